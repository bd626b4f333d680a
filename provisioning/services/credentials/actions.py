"""Asking for a rotation of an organization's access key (the kind is jobs.RotateCredentials): from a person, the
cron's maximum age, a member removed, a cluster forgotten."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q

from provisioning.models import HostedZone, Operation, Organization
from provisioning.services.credentials.jobs import RotateCredentials, credentials_zone

if TYPE_CHECKING:
    from datetime import datetime, timedelta
    from typing import Any

    from django.contrib.auth.models import User
    from django.db.models import QuerySet

    from provisioning.models import Membership


def request_rotation(
    organization: Organization, reason: str, user: User | None = None, new_key: bool = True
) -> Operation | None:
    """Queue a rotation of the organization's access key; None if it has none yet.

    new_key: the rotation must end with a key made after this request (False: only finish one under way)."""
    zone = credentials_zone(organization)
    if zone is None or not Organization.objects.get(pk=organization.pk).active:  # offboarding deletes the key
        return None
    with transaction.atomic():
        if new_key:
            HostedZone.objects.filter(pk=zone.pk).update(rotations_requested=F("rotations_requested") + 1)
        return RotateCredentials.enqueue(organization, user, reason=reason)


def rotate_after_member_left(sender: type[Membership], instance: Membership, **kwargs: Any) -> None:
    """A membership was deleted, whichever way (the members page, the API, the admin, a deleted user): they may have
    read the organization's key (through a cluster endpoint of their own), so it is replaced at once."""
    organization = instance.organization
    request_rotation(organization, f"{instance.user.get_username()} was removed from {organization.name}")


def rotate_now(organization: Organization, user: User) -> Operation:
    """A person's request (the page, the API); ValidationError if the organization has no key yet."""
    operation = request_rotation(organization, f"by {user.get_username()}", user)
    if operation is None:
        raise ValidationError(
            f"{organization.name} has no access key yet: it is made when its first cluster is registered."
        )
    return operation


def zones_due(now: datetime, max_age: timedelta) -> QuerySet[HostedZone]:
    """The zones whose key is older than max_age, or whose rotation is under way or was asked for and not done, and
    for which no rotation is queued or running."""
    unfinished = Operation.objects.filter(kind=RotateCredentials.name, organization=OuterRef("organization")).exclude(
        state__in=Operation.FINISHED
    )
    return (
        HostedZone.objects.with_credentials()
        .filter(
            Q(access_key_created_at__lte=now - max_age)
            | Q(access_key_created_at=None)
            | ~Q(previous_access_key_id="")
            | Q(rotations_answered__lt=F("rotations_requested"))
        )
        .exclude(Exists(unfinished))
        .select_related("organization")
        .order_by("organization__name")
    )


def why_due(zone: HostedZone, now: datetime) -> tuple[str, bool]:
    """Why zones_due picked the zone, and whether a new key is wanted (False: only finish what was begun)."""
    if zone.previous_access_key_id:
        return f"finishing the rotation under way (retiring access key {zone.previous_access_key_id})", False
    if zone.rotations_answered < zone.rotations_requested:
        return "a rotation was asked for and has not been done", False
    if zone.access_key_created_at is None:
        return "the access key's age is unknown", True
    return f"access key {zone.access_key_id} is {(now - zone.access_key_created_at).days} days old", True
