"""Vault writes a request waits for (a cluster's credentials, at registration), recorded before they are made.

A write that times out may land all the same, seconds or minutes after the request gave up and told the user that
nothing was saved. Its record outlives the request: the registration that succeeds removes it, in the transaction
that saves the cluster; any other is settled by the sweep (sweep_operations, every minute), which destroys the path,
every version, unless a registration owns it — at each run until ORGDNS_PENDING_WRITE_WATCH has passed, since the
write may land after a destroy too. The request holds its record locked while it writes and saves, so the sweep never
settles a write still under way, whatever its grace; a request whose process died has released it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from provisioning.clients.errors import ProviderError
from provisioning.models import PendingVaultWrite
from provisioning.services.reconcile.orphans import expected_vault_paths

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from provisioning.clients.vault import Vault
    from provisioning.models import Organization
    from provisioning.services.backends import Backends


def record(path: str, organization: Organization) -> PendingVaultWrite:
    """Before writing `path`: committed at once, whatever transaction the caller is in later."""
    return PendingVaultWrite.objects.create(path=path, organization=organization)


def hold(write: PendingVaultWrite) -> None:
    """In the transaction of the request making the write: its record is locked until that ends (or its process
    dies), and the sweep passes it by meanwhile."""
    PendingVaultWrite.objects.select_for_update().filter(pk=write.pk).first()


def forget(write: PendingVaultWrite) -> None:
    """The write's outcome is known and owned (the registration is saved), or it was destroyed once confirmed."""
    PendingVaultWrite.objects.filter(pk=write.pk).delete()


def settle(backends: Backends, now: datetime, grace: timedelta) -> list[tuple[PendingVaultWrite, str]]:
    """Every recorded write older than grace (its request has given up): kept and forgotten if a row owns its path,
    destroyed otherwise (and forgotten once watched long enough). Returns [(write, what was done)]."""
    settled: list[tuple[PendingVaultWrite, str]] = []
    pending = PendingVaultWrite.objects.filter(created_at__lt=now - grace).select_related("organization")
    if not pending.exists():
        return settled
    vault = backends.vault()
    for write in pending:
        with transaction.atomic():
            if PendingVaultWrite.objects.select_for_update(skip_locked=True).filter(pk=write.pk).exists():
                settled += _settle(write, vault, now)
    return settled


def _settle(write: PendingVaultWrite, vault: Vault, now: datetime) -> list[tuple[PendingVaultWrite, str]]:
    """One record, locked: no request is making its write any more."""
    org = write.organization
    if org is not None and write.path in expected_vault_paths(vault, [org]):
        forget(write)
        return [(write, "kept: a registration owns it")]
    try:
        landed = vault.last_written(write.path) is not None
        if landed:
            vault.destroy(write.path)
    except ProviderError as exc:
        return [(write, f"left for the next sweep: {exc.message}")]
    settled = []
    if landed:
        PendingVaultWrite.objects.filter(pk=write.pk).update(destroyed_at=now)
        settled.append((write, "no registration owns it: destroyed, with every version"))
    if now - write.created_at >= settings.ORGDNS_PENDING_WRITE_WATCH:
        forget(write)
        settled.append((write, "no longer watched"))
    return settled
