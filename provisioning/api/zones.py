"""An organization's hosted zone and what is in it."""

from django.http import Http404, HttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from provisioning import scoping
from provisioning.services.credentials import actions as key_rotation
from provisioning.services.zones import gc as zone_gc
from provisioning.services.zones import records as zones

from ..models import CHANGE
from . import schemas
from .pagination import page_of, paginate
from .params import OrgName
from .problems import Problem
from .responses import queue

router = Router(tags=["zones"])


class RecordPageParams(Schema):
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(100, ge=1, le=300)


@router.get("/organizations/{org}/zone", response={200: schemas.Zone, 404: Problem})
def get_zone(request, org: OrgName):
    """The organization's zone (404 if it has none, or only deleted ones) and what the zone GC will do with it."""
    organization = scoping.organization(request, org)
    zone = zones.live_zone(organization)
    if zone is None:
        raise Http404(f"{organization.name} has no hosted zone: it is made when its first cluster is registered.")
    status = zone_gc.zone_status(organization, timezone.now())
    zone.garbage_collection = status and {
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
    "/organizations/{org}/zone/records", response={200: page_of(schemas.ZoneRecord), 404: Problem, 503: Problem}
)
def list_zone_records(request, org: OrgName, params: Query[RecordPageParams]):
    """The zone's record sets as Route53 has them (read at most every 30 s), with the cluster that owns each."""
    organization = scoping.organization(request, org)
    zone = zones.active_zone(organization)
    if zone is None:
        raise Http404(f"{organization.name} has no zone in Route53 (yet).")
    records = zones.zone_records(zone)
    return paginate(request, records, params, prepare=lambda page: [_record(r) for r in page])


def _record(record):
    cluster = record.cluster and {"id": record.cluster.pk, "name": record.cluster.name}
    return {**vars(record), "cluster": cluster}
