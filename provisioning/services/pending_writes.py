"""Vault writes a request waits for (a cluster's credentials, at registration), recorded before they are made.

A write that times out may land all the same, seconds or minutes after the request gave up and told the user that
nothing was saved. Its record outlives the request: the registration that succeeds removes it, in the transaction
that saves the cluster; any other is settled by the sweep (sweep_operations, every minute), which destroys the path,
every version, unless a registration owns it — at each run until ORGDNS_PENDING_WRITE_WATCH has passed, since the
write may land after a destroy too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from ..clients.errors import ProviderError
from ..models import PendingVaultWrite
from .reconcile import expected_vault_paths

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from ..models import Organization
    from .backends import Backends


def record(path: str, organization: Organization) -> PendingVaultWrite:
    """Before writing `path`: committed at once, whatever transaction the caller is in later."""
    return PendingVaultWrite.objects.create(path=path, organization=organization)


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
        org = write.organization
        if org is not None and write.path in expected_vault_paths(vault, [org]):
            forget(write)
            settled.append((write, "kept: a registration owns it"))
            continue
        try:
            landed = vault.last_written(write.path) is not None
            if landed:
                vault.destroy(write.path)
        except ProviderError as exc:
            settled.append((write, f"left for the next sweep: {exc.message}"))
            continue
        if landed:
            PendingVaultWrite.objects.filter(pk=write.pk).update(destroyed_at=now)
            settled.append((write, "no registration owns it: destroyed, with every version"))
        if now - write.created_at >= settings.ORGDNS_PENDING_WRITE_WATCH:
            forget(write)
            settled.append((write, "no longer watched"))
    return settled
