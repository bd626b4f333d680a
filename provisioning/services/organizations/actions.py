"""Organizations: creating them, their members, their rows on the pages (who may see or change them: access.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from provisioning.clients.errors import ProviderError
from provisioning.models import LIVE_CLUSTER, Cluster, HostedZone, Membership, Organization
from provisioning.services import audit
from provisioning.services.access import organizations_for
from provisioning.services.backends import Backends
from provisioning.services.zones.setup import describe_record_sets, foreign_records, parent_records

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.db.models import Model, QuerySet


def count_per_organization(model: type[Model], condition: Q) -> Coalesce:
    """Per organization row: how many of its `model` rows meet condition (a subquery, so only the shown page pays)."""
    matching = model.objects.filter(condition, organization=OuterRef("pk")).order_by().values("organization")
    return Coalesce(Subquery(matching.annotate(n=Count("pk")).values("n")), 0)


def organization_rows(user: AbstractBaseUser) -> QuerySet[Organization]:
    """The user's organizations with their role in each, their live zone and cluster counts (live, ready, failing)."""
    return (
        organizations_for(user)
        .annotate(
            role=Subquery(Membership.objects.filter(organization=OuterRef("pk"), user=user.pk).values("role")[:1]),
            live=count_per_organization(Cluster, LIVE_CLUSTER),
            ready=count_per_organization(Cluster, Q(state=Cluster.State.READY)),
            failing=count_per_organization(Cluster, Q(state=Cluster.State.ERROR)),
        )
        .prefetch_related(Prefetch("zones", HostedZone.objects.live(), to_attr="live_zones"))
    )


def memberships_of(organization: Organization) -> QuerySet[Membership]:
    return organization.memberships.select_related("user").order_by("user__username")


def get_membership(organization: Organization, username: str) -> Membership:
    return get_object_or_404(organization.memberships.select_related("user"), user__username=username)


def create_organization(name: str, owner: AbstractBaseUser | None = None) -> Organization:
    """A new organization (with its owner). ValidationError, with nothing saved, if the name is not valid, is taken,
    or its zone name is already in use in the parent zone."""
    organization = Organization(name=name)
    try:
        organization.full_clean()
    except ValidationError as exc:
        raise ValidationError(exc.messages) from None
    check_zone_name_is_free(organization)
    try:
        with transaction.atomic():
            organization.save()
            if owner is not None:
                Membership.objects.create(user=owner, organization=organization, role=Membership.Role.OWNER)
            audit.record("organization.create", organization, detail=f"owner {owner.get_username()}" if owner else "")
    except IntegrityError:
        raise ValidationError(f"An organization named {name!r} already exists.") from None
    return organization


def check_zone_name_is_free(organization: Organization) -> None:
    """ValidationError if the parent zone (when there is one) already has records named like the organization's zone:
    they are someone else's, and delegating the zone would take their name over."""
    if not settings.ORGDNS_PARENT_ZONE_ID:
        return
    try:
        foreign = foreign_records(organization, parent_records(organization, Backends().parent_zone_route53()))
    except ProviderError as exc:
        raise ValidationError(f"Could not check the parent zone for {organization.zone_name}: {exc.message}") from None
    if foreign:
        raise ValidationError(
            f"{organization.zone_name} is already in use: the parent zone {settings.ORGDNS_PARENT_ZONE_ID} has "
            f"{describe_record_sets(foreign)} of that name that orgdns did not write. Choose another name."
        )


@transaction.atomic
def set_member(organization: Organization, username: str, role: str) -> Membership:
    """Add an existing user to the organization with this role, or change their role (by hand: not a membership
    that comes from the directory's groups)."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ValidationError(f"There is no user named {username!r}: they must have an account first.")
    if role not in Membership.Role.values:
        raise ValidationError(f"{role!r} is not a role: use one of {', '.join(Membership.Role.values)}.")
    current = Membership.objects.select_for_update().filter(organization=organization, user=user).first()
    if current and current.source == Membership.Source.DIRECTORY:
        raise_from_directory(current)
    if current and current.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
        _refuse_losing_last_owner(organization, user)
    return put_membership(organization, user, role, Membership.Source.HAND, current)


def put_membership(
    organization: Organization,
    user: AbstractBaseUser,
    role: str,
    source: str,
    current: Membership | None,
    why: str = "",
) -> Membership:
    """Give the user this role in the organization (current: their membership now, locked, or None), audited."""
    membership, _ = Membership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role, "source": source}
    )
    was = f"{current.role} → " if current else "added as "
    audit.record("member.set", membership, organization=organization, detail=f"{user.get_username()}: {was}{role}{why}")
    return membership


@transaction.atomic
def remove_member(organization: Organization, membership_id: int) -> Membership:
    """Remove a membership by hand (not one that comes from the directory's groups)."""
    membership = get_object_or_404(Membership.objects.select_for_update(), organization=organization, pk=membership_id)
    if membership.source == Membership.Source.DIRECTORY:
        raise_from_directory(membership)
    if membership.role == Membership.Role.OWNER:
        _refuse_losing_last_owner(organization, membership.user)
    return remove_membership(membership)


def remove_membership(membership: Membership, why: str = "") -> Membership:
    """Remove the membership (locked by the caller), audited; its deletion queues a rotation of the organization's
    key (key_rotation.rotate_after_member_left), whoever removes it."""
    organization = membership.organization
    audit.record(
        "member.remove", membership, organization=organization, detail=f"{membership.user.get_username()}{why}"
    )
    membership.delete()
    return membership


def raise_from_directory(membership: Membership) -> None:
    raise ValidationError(
        f"{membership.user.get_username()}'s membership of {membership.organization.name} comes from the company "
        "directory's groups: change it there (it is applied at their next sign-in)."
    )


def _refuse_losing_last_owner(organization: Organization, user: AbstractBaseUser) -> None:
    owners = Membership.objects.select_for_update().filter(organization=organization, role=Membership.Role.OWNER)
    if not owners.exclude(user=user).exists():
        raise ValidationError(_last_owner(user, organization))


def check_owners_after(organization: Organization, roles: dict[int, str | None]) -> None:
    """ValidationError if the organization, which has an owner, would have none once the users (by id) in roles have
    those roles (None: removed). For changes of several members at once (the admin); set_member and remove_member
    check each change again as they make it."""
    owners = set(
        Membership.objects.filter(organization=organization, role=Membership.Role.OWNER).values_list(
            "user_id", flat=True
        )
    )
    after = {user for user in owners if user not in roles} | {
        user for user, role in roles.items() if role == Membership.Role.OWNER
    }
    if owners and not after:
        leaving = get_user_model().objects.get(pk=min(owners & roles.keys()))
        raise ValidationError(_last_owner(leaving, organization))


def _last_owner(user: AbstractBaseUser, organization: Organization) -> str:
    return f"{user.get_username()} is the last owner of {organization.name}: make someone else owner first."
