"""Organizations and who may see or change them."""

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from ..models import LIVE_CLUSTER, AuditEvent, Cluster, HostedZone, Membership, Operation, Organization
from . import audit

WRITE_ROLES = (Membership.Role.OWNER, Membership.Role.MEMBER)


def organizations_for(user):
    if user.is_staff:
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=user)


def visible(model, user):
    """The rows of model (which has an `organization`) that belong to the user's organizations."""
    return model.objects.filter(organization__in=organizations_for(user))


def audit_events_for(user):
    """The events of the user's organizations; staff also see those of no organization (system, deleted ones)."""
    if user.is_staff:
        return AuditEvent.objects.all()
    return visible(AuditEvent, user)


def count_per_organization(model, condition=Q()):
    """Per organization row: how many of its `model` rows meet condition (a subquery, so only the shown page pays)."""
    matching = model.objects.filter(condition, organization=OuterRef("pk")).order_by().values("organization")
    return Coalesce(Subquery(matching.annotate(n=Count("pk")).values("n")), 0)


def organization_rows(user):
    """The user's organizations with their role in each, their live zone and cluster counts (live, ready, failing)."""
    return (
        organizations_for(user)
        .annotate(
            role=Subquery(Membership.objects.filter(organization=OuterRef("pk"), user=user.pk).values("role")[:1]),
            live=count_per_organization(Cluster, LIVE_CLUSTER),
            ready=count_per_organization(Cluster, Q(state=Cluster.State.READY)),
            failing=count_per_organization(Cluster, Q(state=Cluster.State.ERROR)),
        )
        .prefetch_related(Prefetch("zones", HostedZone.objects.exclude(state=HostedZone.State.DELETED), to_attr="live_zones"))
    )


def can_write(user, organization):
    if user.is_staff:
        return True
    return Membership.objects.filter(user=user, organization=organization, role__in=WRITE_ROLES).exists()


def can_manage_members(user, organization):
    if user.is_staff:
        return True
    return Membership.objects.filter(user=user, organization=organization, role=Membership.Role.OWNER).exists()


def get_org_for_user(user, name):
    """The organization if the user may see it, else 404 (so others' names are not revealed)."""
    return get_object_or_404(organizations_for(user), name=name)


def get_writable_org_for_user(user, name):
    """The organization if the user may act in it; 404 if they may not see it, 403 if they may only look."""
    organization = get_org_for_user(user, name)
    require_write(user, organization)
    return organization


def require_write(user, organization):
    if not can_write(user, organization):
        raise PermissionDenied(f"Your role in {organization.name} does not allow changes: viewers only look.")


def require_member_management(user, organization):
    if not can_manage_members(user, organization):
        raise PermissionDenied(f"Only owners of {organization.name} manage its members.")


def get_cluster_for_user(user, org_name, pk):
    return get_object_or_404(
        Cluster.objects.select_related("organization"), organization__in=organizations_for(user), organization__name=org_name, pk=pk
    )


def get_writable_cluster_for_user(user, org_name, pk):
    cluster = get_cluster_for_user(user, org_name, pk)
    require_write(user, cluster.organization)
    return cluster


def memberships_of(organization):
    return organization.memberships.select_related("user").order_by("user__username")


def get_membership(organization, username):
    return get_object_or_404(organization.memberships.select_related("user"), user__username=username)


def get_operation_for_user(user, pk):
    return get_object_or_404(
        Operation.objects.select_related("organization", "cluster", "certificate", "created_by"),
        organization__in=organizations_for(user),
        pk=pk,
    )


def require_staff(user, action):
    if not user.is_staff:
        raise PermissionDenied(f"Only support staff {action}.")


@transaction.atomic
def create_organization(name, owner=None):
    organization = Organization(name=name)
    organization.full_clean()
    organization.save()
    if owner is not None:
        Membership.objects.create(user=owner, organization=organization, role=Membership.Role.OWNER)
    audit.record("organization.create", organization, detail=f"owner {owner.get_username()}" if owner else "")
    return organization


@transaction.atomic
def set_member(organization, username, role):
    """Add an existing user to the organization with this role, or change their role."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ValidationError(f"There is no user named {username!r}: they must have an account first.")
    if role not in Membership.Role.values:
        raise ValidationError(f"{role!r} is not a role: use one of {', '.join(Membership.Role.values)}.")
    current = Membership.objects.select_for_update().filter(organization=organization, user=user).first()
    if current and current.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
        _refuse_losing_last_owner(organization, user)
    membership, _ = Membership.objects.update_or_create(organization=organization, user=user, defaults={"role": role})
    was = f"{current.role} → " if current else "added as "
    audit.record("member.set", membership, organization=organization, detail=f"{username}: {was}{role}")
    return membership


@transaction.atomic
def remove_member(organization, membership_id):
    membership = get_object_or_404(Membership.objects.select_for_update(), organization=organization, pk=membership_id)
    if membership.role == Membership.Role.OWNER:
        _refuse_losing_last_owner(organization, membership.user)
    audit.record("member.remove", membership, organization=organization, detail=membership.user.get_username())
    membership.delete()
    return membership


def _refuse_losing_last_owner(organization, user):
    owners = Membership.objects.select_for_update().filter(organization=organization, role=Membership.Role.OWNER)
    if not owners.exclude(user=user).exists():
        raise ValidationError(f"{user.username} is the last owner of {organization.name}: make someone else owner first.")
