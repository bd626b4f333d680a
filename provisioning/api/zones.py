"""An organization's hosted zone and what is in it."""

from django.http import Http404, HttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from provisioning import scoping
from provisioning.clients.aws import MAX_LIST_RECORDS
from provisioning.services.credentials import actions as key_rotation
from provisioning.services.zones import gc as zone_gc
from provisioning.services.zones import records as zones

from ..models import CHANGE
from . import schemas
from .params import OrgName
from .problems import Problem
from .responses import queue

router = Router(tags=["zones"])


class RecordPageParams(Schema):
    start_name: str | None = Field(
        None, max_length=zones.MAX_NAME_LENGTH, description="The record name the page starts at (from `next`)."
    )
    start_type: str | None = Field(None, max_length=10, description="The record type the page starts at.")
    start_identifier: str | None = Field(
        None, max_length=zones.MAX_IDENTIFIER_LENGTH, description="The set identifier the page starts at, if any."
    )
    page_size: int = Field(zones.RECORDS_PER_PAGE, ge=1, le=MAX_LIST_RECORDS)


@router.get("/organizations/{org}/zone", response={200: schemas.Zone, 404: Problem})
def get_zone(request, org: OrgName):
    """The organization's zone (404 if it has none, or only deleted ones) and what the zone GC will do with it."""
    organization = scoping.organization(request, org)
    zone = zones.live_zone(organization)
    if zone is None:
        raise Http404(f"{organization.name} has no hosted zone: it is made when its first cluster is registered.")
    status = zone_gc.zone_status(organization, timezone.now())
    zone.garbage_collection = status and {  # type: ignore[attr-defined]  # for the response schema
        "action": status.action,
        "reason": status.reason,
        "not_before": status.not_before,
    }
    return zone


@router.post(
    "/organizations/{org}/zone/rotate-key", response={202: schemas.Accepted, 403: Problem, 404: Problem, 409: Problem}
)
def rotate_key(request, response: HttpResponse, org: OrgName):
    """Replace the zone's access key: the new key runs in every cluster of the organization before the old one is
    deleted (409 if the organization has no key yet)."""
    organization = scoping.organization(request, org, CHANGE)
    return queue(response, key_rotation.rotate_now, organization, request.user)


@router.get(
    "/organizations/{org}/zone/records",
    response={200: schemas.ZoneRecordPage, 404: Problem, 422: Problem, 503: Problem},
)
def list_zone_records(request, org: OrgName, params: Query[RecordPageParams]):
    """One page of the zone's record sets as Route53 has them (each page read at most every 30 s), with the cluster
    that owns each; `next` links the following page (Route53 pages by position, so there is no page count)."""
    organization = scoping.organization(request, org)
    zone = zones.active_zone(organization)
    if zone is None:
        raise Http404(f"{organization.name} has no zone in Route53 (yet).")
    start = zones.position(zone, params.start_name, params.start_type, params.start_identifier)  # 422 if it is not one
    page = zones.record_page(zone, start, params.page_size)
    return {"items": [_record(r) for r in page.records], "next": page.following and _url(request, page.following)}


def _url(request, position):
    query = request.GET.copy()
    query["start_name"], query["start_type"] = position.name, position.type
    query.pop("start_identifier", None)
    if position.identifier:
        query["start_identifier"] = position.identifier
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def _record(record):
    cluster = record.cluster and {"id": record.cluster.pk, "name": record.cluster.name}
    return {**vars(record), "cluster": cluster}
