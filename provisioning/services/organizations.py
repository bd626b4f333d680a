"""Organizations and who may see or change them."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.shortcuts import get_object_or_404

from ..clients.errors import ProviderError
from ..models import LIVE_CLUSTER, AuditEvent, Cluster, HostedZone, Membership, Operation, Organization
from . import audit
from .backends import Backends
from .zone_setup import describe_record_sets, foreign_records, parent_records

WRITE_ROLES = (Membership.Role.OWNER, Membership.Role.MEMBER)
ACT_IN_ANY_ORGANIZATION = "provisioning.act_in_any_organization"


def organizations_for(user):
    """Staff see every organization; everyone else the organizations they belong to."""
    if user.is_staff:
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=user)


def acts_in_any_organization(user):
    """Support staff who may change what they see: staff with the permission (superusers have every permission).
    Other staff only look."""
    return user.is_staff and user.has_perm(ACT_IN_ANY_ORGANIZATION)


def can_create_organizations(user):
    return user.is_staff and user.has_perm("provisioning.add_organization")


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
        .prefetch_related(
            Prefetch("zones", HostedZone.objects.exclude(state=HostedZone.State.DELETED), to_attr="live_zones")
        )
    )


def can_write(user, organization):
    if not organization.active:
        return False
    if acts_in_any_organization(user):
        return True
    return Membership.objects.filter(user=user, organization=organization, role__in=WRITE_ROLES).exists()


def can_manage_members(user, organization):
    if not organization.active:
        return False
    if acts_in_any_organization(user):
        return True
    return Membership.objects.filter(user=user, organization=organization, role=Membership.Role.OWNER).exists()


def get_org_for_user(user, name):
    """The organization if the user may see it, else 404 (so others' names are not revealed)."""
    return visible_or_404(user, Organization.objects.all(), f"organization {name}", name=name)


def get_cluster_for_user(user, org_name, pk):
    return visible_or_404(
        user,
        Cluster.objects.select_related("organization"),
        f"cluster {pk} of {org_name}",
        organization__name=org_name,
        pk=pk,
    )


def get_operation_for_user(user, pk):
    return visible_or_404(
        user,
        Operation.objects.select_related("organization", "cluster", "certificate", "created_by"),
        f"operation {pk}",
        pk=pk,
    )


def visible_or_404(user, objects, what, **lookup):
    """The object if it is in one of the user's organizations; else 404, and if it is another organization's, an
    audit record of the refusal (so that tenants and support see who reached for what is not theirs)."""
    scope = "pk__in" if objects.model is Organization else "organization__in"
    found = objects.filter(**{scope: organizations_for(user)}, **lookup).first()
    if found is None:
        target = objects.filter(**{k: v for k, v in lookup.items() if k != "organization__name"}).first()
        owner = target if isinstance(target, Organization) else getattr(target, "organization", None)
        if owner is not None and not organizations_for(user).filter(pk=owner.pk).exists():
            refused(user, target, f"{what}: not visible to {user.get_username()}")
        raise Http404(f"No {objects.model._meta.verbose_name} matches the given query.")
    return found


def refused(user, obj, detail):
    """Record that the user was refused access to obj (an object of an organization, or None for the whole site)."""
    audit.record("access.refused", obj, actor=user, outcome=AuditEvent.Outcome.REFUSED, detail=detail)


# The checks below are the only ones: the pages, the API and the admin call them (what: the request or action, for
# the audit record of a refusal). Each raises PermissionDenied (403) saying what is missing, after recording it.


def can_offboard(user, organization):
    """Owners, and support staff with the permission to act, delete an organization (again, if that failed)."""
    if organization.state == Organization.State.OFFBOARDED:
        return False
    if acts_in_any_organization(user):
        return True
    return Membership.objects.filter(user=user, organization=organization, role=Membership.Role.OWNER).exists()


def require_write(user, organization, what):
    """PermissionDenied, audited, unless the user may change the organization's clusters and certificates."""
    require_not_offboarding(user, organization, what)
    if not can_write(user, organization):
        refused(user, organization, f"{what}: {user.get_username()} may look at {organization.name} but not change it")
        raise PermissionDenied(
            f"You may look at {organization.name} but not change it: that takes the member or owner role "
            "(or, for support staff, the permission to act in any organization)."
        )


def require_not_offboarding(user, organization, what):
    if not organization.active:
        refused(user, organization, f"{what}: {organization.name} is {organization.state}")
        raise PermissionDenied(f"{organization.name} is {organization.state}: nothing in it can be changed any more.")


def require_offboarding_right(user, organization, what):
    if not can_offboard(user, organization):
        refused(user, organization, f"{what}: {user.get_username()} may not delete {organization.name}")
        if organization.state == Organization.State.OFFBOARDED:
            raise PermissionDenied(f"{organization.name} was offboarded already.")
        raise PermissionDenied(
            f"Only owners of {organization.name} (or support staff with the permission to act in any organization) "
            "delete it."
        )


def require_member_management(user, organization):
    require_not_offboarding(user, organization, "manage members")
    if not can_manage_members(user, organization):
        refused(user, organization, f"manage members: {user.get_username()} is not an owner of {organization.name}")
        raise PermissionDenied(f"Only owners of {organization.name} manage its members.")


def require_organization_creation(user):
    if not can_create_organizations(user):
        refused(user, None, f"create an organization: {user.get_username()} may not")
        raise PermissionDenied("Only support staff with the permission to add organizations create them.")


def require_staff(user, what):
    """PermissionDenied, audited, unless the user is staff (what: the page, for the message and the record)."""
    if not user.is_staff:
        refused(user, None, f"{what}: {user.get_username()} is not staff")
        raise PermissionDenied(f"Only platform staff see {what}.")


def get_writable_org_for_user(user, name, what):
    """The organization if the user may act in it; 404 if they may not see it, 403 if they may only look."""
    organization = get_org_for_user(user, name)
    require_write(user, organization, what)
    return organization


def get_writable_cluster_for_user(user, org_name, pk, what):
    cluster = get_cluster_for_user(user, org_name, pk)
    require_write(user, cluster.organization, what)
    return cluster


def memberships_of(organization):
    return organization.memberships.select_related("user").order_by("user__username")


def get_membership(organization, username):
    return get_object_or_404(organization.memberships.select_related("user"), user__username=username)


def create_organization(name, owner=None):
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


def check_zone_name_is_free(organization):
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
    membership.delete()  # which queues a rotation of the organization's key (key_rotation.rotate_after_member_left)
    return membership


def _refuse_losing_last_owner(organization, user):
    owners = Membership.objects.select_for_update().filter(organization=organization, role=Membership.Role.OWNER)
    if not owners.exclude(user=user).exists():
        raise ValidationError(
            f"{user.username} is the last owner of {organization.name}: make someone else owner first."
        )
