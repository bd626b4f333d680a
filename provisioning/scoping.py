"""The HTTP side of who may see or change what, for the pages, the API and the admin: the object a request names if
its user may see it (else 404) and do what it asks (else 403). The rules are the models' (`for_user`,
`Organization.allows`); here they become answers, and each refusal an audit record (services/access.py) naming the
request (`described`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.core.exceptions import PermissionDenied
from django.http import Http404

from provisioning.services import access

from .models import (
    CHANGE,
    MANAGE_MEMBERS,
    OFFBOARD,
    VIEW,
    Certificate,
    Cluster,
    Operation,
    Organization,
    can_create_organizations,
    token_organizations,
)

if TYPE_CHECKING:
    from typing import Any
    from uuid import UUID

    from django.contrib.auth.models import User
    from django.db.models import QuerySet
    from django.http import HttpRequest


def user_of(request: HttpRequest) -> User:
    """The signed-in user (every page but the login page, and every API call, has one)."""
    return cast("User", request.user)


def described(request: HttpRequest) -> str:
    """The request as the refusal trail names it: "POST /orgs/acme/delete"."""
    return f"{request.method} {request.path}"


def organization(request: HttpRequest, name: str, action: str = VIEW) -> Organization:
    """The organization if the user may see it, else 404 (so others' names are not revealed); then 403 unless they
    may do action in it."""
    found = visible_or_404(request, Organization.objects.all(), name=name)
    require(request, found, action)
    return found


def cluster(request: HttpRequest, org_name: str, pk: int, action: str = VIEW) -> Cluster:
    found = visible_or_404(request, Cluster.objects.select_related("organization"), organization__name=org_name, pk=pk)
    require(request, found.organization, action)
    return found


def certificate(request: HttpRequest, org_name: str, pk: int, action: str = VIEW) -> Certificate:
    found = visible_or_404(
        request, Certificate.objects.select_related("organization"), organization__name=org_name, pk=pk
    )
    require(request, found.organization, action)
    return found


def operation(request: HttpRequest, pk: UUID | str, action: str = VIEW) -> Operation:
    found = visible_or_404(
        request, Operation.objects.select_related("organization", "cluster", "certificate", "created_by"), pk=pk
    )
    require(request, found.organization, action)
    return found


def visible_or_404(request: HttpRequest, objects: QuerySet[Any], **lookup: Any) -> Any:
    """The object if the user may see it; else 404, and if it is another organization's, an audit record of the
    refusal (so that support see who reached for what is not theirs)."""
    user = user_of(request)
    found = cast("Any", objects).for_user(user).filter(**lookup).first()
    if found is None:
        target = objects.filter(**{k: v for k, v in lookup.items() if k != "organization__name"}).first()
        owner = target if isinstance(target, Organization) else getattr(target, "organization", None)
        if target is not None and owner is not None and not owner.allows(user, VIEW):
            access.refused_across_organizations(user, target, owner)
        raise Http404(f"No {objects.model._meta.verbose_name} matches the given query.")
    return found


def require(request: HttpRequest, organization: Organization, action: str) -> None:
    """403, recorded, unless the user may do action in the organization (which they see)."""
    if action == VIEW or organization.allows(request.user, action):
        return
    user, name, what = user_of(request), organization.name, described(request)
    if action == OFFBOARD:
        access.refused(user, organization, f"{what}: {user.get_username()} may not delete {name}")
        if organization.state == Organization.State.OFFBOARDED:
            raise PermissionDenied(f"{name} was offboarded already.")
        raise PermissionDenied(
            f"Only owners of {name} (or support staff with the permission to act in any organization) delete it."
        )
    if not organization.active:
        access.refused(user, organization, f"{what}: {name} is {organization.state}")
        raise PermissionDenied(f"{name} is {organization.state}: nothing in it can be changed any more.")
    if action == MANAGE_MEMBERS:
        access.refused(user, organization, f"{what}: {user.get_username()} is not an owner of {name}")
        raise PermissionDenied(f"Only owners of {name} manage its members.")
    assert action == CHANGE, action
    access.refused(user, organization, f"{what}: {user.get_username()} may look at {name} but not change it")
    raise PermissionDenied(
        f"You may look at {name} but not change it: that takes the member or owner role "
        "(or, for support staff, the permission to act in any organization)."
    )


def require_organization_creation(request: HttpRequest) -> None:
    user = user_of(request)
    if not can_create_organizations(user):
        access.refused(user, None, f"create an organization: {user.get_username()} may not")
        raise PermissionDenied("Only support staff with the permission to add organizations create them.")


def require_staff(request: HttpRequest, what: str) -> None:
    """403, recorded, unless the user is staff (what: the page, for the message and the record)."""
    user = user_of(request)
    if not user.is_staff:
        access.refused(user, None, f"{what}: {user.get_username()} is not staff")
        raise PermissionDenied(f"Only platform staff see {what}.")
    if token_organizations(user) is not None:
        access.refused(user, None, f"{what}: through a token limited to some organizations")
        raise PermissionDenied(f"An API token limited to some organizations does not reach {what}.")
