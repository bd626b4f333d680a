"""The refusal trail: what the pages, the API and the admin record when they refuse a request (provisioning/scoping.py
decides; the rules are the models' `for_user`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..models import AuditEvent
from . import audit

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.db.models import Model

    from ..models import Organization


def refused(user: User, obj: Model | None, detail: str) -> None:
    """Record that the user was refused access to obj (an object of an organization, or None for the whole site)."""
    audit.record("access.refused", obj, actor=user, outcome=AuditEvent.Outcome.REFUSED, detail=detail)


def refused_across_organizations(user: User, target: Model, owner: Organization) -> None:
    """A user reached for another organization's object. Recorded for staff only (an event of no organization): the
    organization probed did not ask for it, and ids are sequential, so probing would fill its audit trail with a
    stranger's entries. Nothing of the request is written, only what the database says (no path, no query)."""
    audit.record(
        "access.refused",
        target,
        staff_only=True,
        actor=user,
        outcome=AuditEvent.Outcome.REFUSED,
        detail=f"{target._meta.model_name} {target.pk} of organization {owner.name}: not visible to "
        f"{user.get_username()}",
    )
