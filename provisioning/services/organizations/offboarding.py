"""Offboarding an organization: confirm, stop its work, queue the job that removes everything of it
(offboarding_jobs).

The organization row stays, as a tombstone in state `offboarded`: its audit trail and its zones' cost ledger keep
pointing at it, and it keeps its name, so that nobody else can take over `<name>.<base-domain>` — a name the former
tenant's users, links and trust in its CA (name-constrained to that zone) may still point at.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction

from provisioning.models import Operation, Organization
from provisioning.services.organizations import offboarding_jobs

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)


def offboard_organization(organization: Organization, confirmation: str | None, user: User | None = None) -> Operation:
    """Queue the offboarding of the organization; confirmation must be its name. Starts it again if the last attempt
    failed. ValidationError, with nothing changed, otherwise."""
    confirm(organization, confirmation)
    with transaction.atomic():
        current = Organization.objects.select_for_update().get(pk=organization.pk)
        if current.state == Organization.State.OFFBOARDED:
            raise ValidationError(f"{current.name} was offboarded on {current.offboarded_at:%Y-%m-%d %H:%M} UTC.")
        unfinished = running_offboarding(current)
        if unfinished is not None:
            raise ValidationError(f"{current.name} is already being offboarded (operation {unfinished.pk}).")
        current.start_offboarding()
        offboarding_jobs.cancel_waiting_operations(current)
        return offboarding_jobs.OffboardOrganization.enqueue(current, user)


def running_offboarding(organization: Organization) -> Operation | None:
    """The organization's offboarding operation that has not finished, if any."""
    return (
        organization.operations.filter(kind=offboarding_jobs.OffboardOrganization.name)
        .exclude(state__in=Operation.FINISHED)
        .first()
    )


def confirm(organization: Organization, confirmation: str | None) -> None:
    """ValidationError unless confirmation is the organization's name."""
    if (confirmation or "").strip() != organization.name:
        raise ValidationError(
            f"To delete the organization, type its name, {organization.name}, exactly: "
            f"{(confirmation or '').strip()[:63]!r} is not it. Nothing was changed."
        )
