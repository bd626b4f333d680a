"""Who may see or change what. Every page and API handler starts with one call here: get_X_for_user (the object if
the user may see it, else 404) or get_writable_X_for_user (also 403 unless they may change it). The checks are the
only ones: the pages, the API and the admin call them (what: the request or action, for the audit record of a
refusal). Each refusal raises PermissionDenied (403) or Http404 saying what is missing, after recording it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.http import Http404

from ..models import AuditEvent, Certificate, Cluster, Membership, Operation, Organization
from . import audit

if TYPE_CHECKING:
    from typing import Any
    from uuid import UUID

    from django.contrib.auth.models import User
    from django.db.models import Model, QuerySet

WRITE_ROLES = (Membership.Role.OWNER, Membership.Role.MEMBER)
ACT_IN_ANY_ORGANIZATION = "provisioning.act_in_any_organization"


def organizations_for(user: User) -> QuerySet[Organization]:
    """Staff see every organization; everyone else the organizations they belong to. Through an API token limited to
    named organizations, only those of them."""
    organizations = Organization.objects.all() if user.is_staff else Organization.objects.filter(memberships__user=user)
    limited_to = token_organizations(user)
    return organizations if limited_to is None else organizations.filter(pk__in=limited_to)


def token_organizations(user: User) -> frozenset[int] | None:
    """The organizations the API token the user authenticated with is limited to; None: not limited (or a session)."""
    return getattr(user, TOKEN_ORGANIZATIONS, None)


def limit_to_token(user: User, organization_ids: frozenset[int] | None) -> None:
    """For this request, the user acts through a token limited to these organizations (None: not limited)."""
    setattr(user, TOKEN_ORGANIZATIONS, organization_ids)


TOKEN_ORGANIZATIONS = "_orgdns_token_organizations"


def visible[M: Model](model: type[M], user: User) -> QuerySet[M]:
    """The rows of model (which has an `organization`) that belong to the user's organizations."""
    return model._default_manager.filter(organization__in=organizations_for(user))


def audit_events_for(user: User) -> QuerySet[AuditEvent]:
    """The events of the user's organizations; staff also see those of no organization (system, deleted ones)."""
    if user.is_staff and token_organizations(user) is None:
        return AuditEvent.objects.all()
    return visible(AuditEvent, user)


def acts_in_any_organization(user: User) -> bool:
    """Support staff who may change what they see: staff with the permission (superusers have every permission).
    Other staff only look."""
    return user.is_staff and user.has_perm(ACT_IN_ANY_ORGANIZATION)


def can_create_organizations(user: User) -> bool:
    """Staff with the permission; not through a token limited to some organizations."""
    return user.is_staff and user.has_perm("provisioning.add_organization") and token_organizations(user) is None


def can_write(user: User, organization: Organization) -> bool:
    if not organization.active:
        return False
    if acts_in_any_organization(user):
        return True
    return Membership.objects.filter(user=user, organization=organization, role__in=WRITE_ROLES).exists()


def can_manage_members(user: User, organization: Organization) -> bool:
    if not organization.active:
        return False
    if acts_in_any_organization(user):
        return True
    return Membership.objects.filter(user=user, organization=organization, role=Membership.Role.OWNER).exists()


def can_offboard(user: User, organization: Organization) -> bool:
    """Owners, and support staff with the permission to act, delete an organization (again, if that failed)."""
    if organization.state == Organization.State.OFFBOARDED:
        return False
    if acts_in_any_organization(user):
        return True
    return Membership.objects.filter(user=user, organization=organization, role=Membership.Role.OWNER).exists()


def get_org_for_user(user: User, name: str) -> Organization:
    """The organization if the user may see it, else 404 (so others' names are not revealed)."""
    return visible_or_404(user, Organization.objects.all(), f"organization {name}", name=name)


def get_writable_org_for_user(user: User, name: str, what: str) -> Organization:
    """The organization if the user may act in it; 404 if they may not see it, 403 if they may only look."""
    organization = get_org_for_user(user, name)
    require_write(user, organization, what)
    return organization


def get_org_for_member_management(user: User, name: str) -> Organization:
    """The organization if the user may manage its members; 404 if they may not see it, 403 if they may only look."""
    organization = get_org_for_user(user, name)
    require_member_management(user, organization)
    return organization


def get_org_to_offboard(user: User, name: str, what: str) -> Organization:
    """The organization if the user may delete it; 404 if they may not see it, 403 otherwise."""
    organization = get_org_for_user(user, name)
    require_offboarding_right(user, organization, what)
    return organization


def get_cluster_for_user(user: User, org_name: str, pk: int) -> Cluster:
    return visible_or_404(
        user,
        Cluster.objects.select_related("organization"),
        f"cluster {pk} of {org_name}",
        organization__name=org_name,
        pk=pk,
    )


def get_writable_cluster_for_user(user: User, org_name: str, pk: int, what: str) -> Cluster:
    cluster = get_cluster_for_user(user, org_name, pk)
    require_write(user, cluster.organization, what)
    return cluster


def get_certificate_for_user(user: User, org_name: str, pk: int) -> Certificate:
    return visible_or_404(
        user,
        Certificate.objects.select_related("organization"),
        f"certificate {pk} of {org_name}",
        organization__name=org_name,
        pk=pk,
    )


def get_writable_certificate_for_user(user: User, org_name: str, pk: int, what: str) -> Certificate:
    certificate = get_certificate_for_user(user, org_name, pk)
    require_write(user, certificate.organization, what)
    return certificate


def get_operation_for_user(user: User, pk: UUID | str) -> Operation:
    return visible_or_404(
        user,
        Operation.objects.select_related("organization", "cluster", "certificate", "created_by"),
        f"operation {pk}",
        pk=pk,
    )


def get_writable_operation_for_user(user: User, pk: UUID | str, what: str) -> Operation:
    operation = get_operation_for_user(user, pk)
    require_write(user, operation.organization, what)
    return operation


def visible_or_404(user: User, objects: QuerySet[Any], what: str, **lookup: Any) -> Any:
    """The object if it is in one of the user's organizations; else 404, and if it is another organization's, an
    audit record of the refusal (so that tenants and support see who reached for what is not theirs)."""
    scope = "pk__in" if objects.model is Organization else "organization__in"
    found = objects.filter(**{scope: organizations_for(user)}, **lookup).first()
    if found is None:
        target = objects.filter(**{k: v for k, v in lookup.items() if k != "organization__name"}).first()
        owner = target if isinstance(target, Organization) else getattr(target, "organization", None)
        if target is not None and owner is not None and not organizations_for(user).filter(pk=owner.pk).exists():
            refused_across_organizations(user, target, owner)
        raise Http404(f"No {objects.model._meta.verbose_name} matches the given query.")
    return found


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


def require_write(user: User, organization: Organization, what: str) -> None:
    """PermissionDenied, audited, unless the user may change the organization's clusters and certificates."""
    require_not_offboarding(user, organization, what)
    if not can_write(user, organization):
        refused(user, organization, f"{what}: {user.get_username()} may look at {organization.name} but not change it")
        raise PermissionDenied(
            f"You may look at {organization.name} but not change it: that takes the member or owner role "
            "(or, for support staff, the permission to act in any organization)."
        )


def require_not_offboarding(user: User, organization: Organization, what: str) -> None:
    if not organization.active:
        refused(user, organization, f"{what}: {organization.name} is {organization.state}")
        raise PermissionDenied(f"{organization.name} is {organization.state}: nothing in it can be changed any more.")


def require_offboarding_right(user: User, organization: Organization, what: str) -> None:
    if not can_offboard(user, organization):
        refused(user, organization, f"{what}: {user.get_username()} may not delete {organization.name}")
        if organization.state == Organization.State.OFFBOARDED:
            raise PermissionDenied(f"{organization.name} was offboarded already.")
        raise PermissionDenied(
            f"Only owners of {organization.name} (or support staff with the permission to act in any organization) "
            "delete it."
        )


def require_member_management(user: User, organization: Organization) -> None:
    require_not_offboarding(user, organization, "manage members")
    if not can_manage_members(user, organization):
        refused(user, organization, f"manage members: {user.get_username()} is not an owner of {organization.name}")
        raise PermissionDenied(f"Only owners of {organization.name} manage its members.")


def require_organization_creation(user: User) -> None:
    if not can_create_organizations(user):
        refused(user, None, f"create an organization: {user.get_username()} may not")
        raise PermissionDenied("Only support staff with the permission to add organizations create them.")


def require_staff(user: User, what: str) -> None:
    """PermissionDenied, audited, unless the user is staff (what: the page, for the message and the record)."""
    if not user.is_staff:
        refused(user, None, f"{what}: {user.get_username()} is not staff")
        raise PermissionDenied(f"Only platform staff see {what}.")
    if token_organizations(user) is not None:
        refused(user, None, f"{what}: through a token limited to some organizations")
        raise PermissionDenied(f"An API token limited to some organizations does not reach {what}.")
