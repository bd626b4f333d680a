"""Organizations and their members."""

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Status

from provisioning import scoping
from provisioning.services.organizations import actions as organizations
from provisioning.services.organizations import offboarding

from ..models import CHANGE, MANAGE_MEMBERS, OFFBOARD
from . import schemas
from .pagination import PageParams, page_of, paginate
from .params import OrgName, Username, text_query
from .problems import Problem, refused
from .responses import accepted

router = Router(tags=["organizations"])


def organization_row(request, name):
    """The organization as the lists show it (role, zone, cluster counts), if the user may see it."""
    organization = scoping.organization(request, name)
    row = organizations.organization_rows(request.user).filter(pk=organization.pk).first()
    if row is None:
        raise Http404
    return row


def detail(request, name):
    row = organization_row(request, name)
    row.can_write = row.allows(request.user, CHANGE)
    row.can_manage_members = row.allows(request.user, MANAGE_MEMBERS)
    return row


@router.get("/organizations", response=page_of(schemas.Organization))
def list_organizations(
    request, params: Query[PageParams], name_contains: str = text_query("Only organizations whose name contains this.")
):
    """Your organizations (staff: every organization), by name."""
    rows = organizations.organization_rows(request.user).filter(name__icontains=name_contains).order_by("name", "pk")
    return paginate(request, rows, params)


@router.post("/organizations", response={201: schemas.OrganizationDetail, 403: Problem, 422: Problem})
def create_organization(request, body: schemas.NewOrganization):
    """Support staff only: a new organization, owned by you."""
    scoping.require_organization_creation(request)
    with refused(422):
        organization = organizations.create_organization(body.name, owner=request.user)
    return Status(201, detail(request, organization.name))


@router.get("/organizations/{org}", response={200: schemas.OrganizationDetail, 404: Problem})
def get_organization(request, org: OrgName):
    return detail(request, org)


@router.post(
    "/organizations/{org}/offboard",
    response={202: schemas.Accepted, 403: Problem, 404: Problem, 409: Problem, 422: Problem},
)
def offboard_organization(request, response: HttpResponse, org: OrgName, body: schemas.Offboarding):
    """Owners (and support staff with the permission to act): delete the organization. One job cancels its queued
    operations, waits for its running ones, deregisters its clusters, deletes its certificates, CA and AWS
    credentials and removes its members; the GC deletes its zone when that costs least. Its audit trail and cost
    ledger remain, and its name stays taken. Again after a failure: resumes it."""
    organization = scoping.organization(request, org, OFFBOARD)
    with refused(422):
        offboarding.confirm(organization, body.confirmation)
    with refused(409):
        operation = offboarding.offboard_organization(organization, body.confirmation, request.user)
    return accepted(response, operation)


@router.get("/organizations/{org}/members", response={200: page_of(schemas.Member), 404: Problem})
def list_members(request, org: OrgName, params: Query[PageParams]):
    organization = scoping.organization(request, org)
    return paginate(request, organizations.memberships_of(organization), params)


@router.put(
    "/organizations/{org}/members/{username}", response={200: schemas.Member, 403: Problem, 404: Problem, 422: Problem}
)
def set_member(request, org: OrgName, username: Username, body: schemas.MemberRole):
    """Owners only: add an existing user to the organization with this role, or change their role."""
    organization = scoping.organization(request, org, MANAGE_MEMBERS)
    with refused(422):
        return organizations.set_member(organization, username, body.role)


@router.delete(
    "/organizations/{org}/members/{username}", response={204: None, 403: Problem, 404: Problem, 409: Problem}
)
def remove_member(request, org: OrgName, username: Username):
    """Owners only. The last owner cannot be removed."""
    organization = scoping.organization(request, org, MANAGE_MEMBERS)
    membership = get_object_or_404(organization.memberships, user__username=username)
    with refused(409):
        organizations.remove_member(organization, membership.pk)
    return Status(204, None)
