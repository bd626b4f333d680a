"""The audit trail of your organizations."""

from ninja import Query, Router

from ..models import AuditEvent
from . import schemas
from .pagination import PageParams, page_of, paginate
from .params import text_query

router = Router(tags=["audit"])


@router.get("/audit-events", response=page_of(schemas.AuditEvent))
def list_audit_events(
    request,
    params: Query[PageParams],
    organization: str = text_query("An organization's name."),
    action: str = text_query("A prefix of the action, e.g. register. or certificate."),
    outcome: schemas.AuditOutcome | None = None,
    source: schemas.AuditSource | None = None,
    object_type: str = text_query("cluster, certificate, organization, hostedzone, membership, apitoken…"),
    object_id: str = text_query("The object's id (with object_type)."),
    request_id: str = text_query("orgdns's id of the request that acted (the X-Request-ID of its answer)."),
    client_request_id: str = text_query("The X-Request-ID the acting request was sent with."),
):
    """Events of your organizations (staff: all), newest first. `action` matches a prefix (e.g. `register.`)."""
    rows = AuditEvent.objects.for_user(request.user).select_related("organization")
    exact = {
        "organization__name": organization,
        "outcome": outcome,
        "source": source,
        "object_type": object_type,
        "object_id": object_id,
        "request_id": request_id,
        "client_request_id": client_request_id,
    }
    rows = rows.filter(**{field: value for field, value in exact.items() if value})
    if action:
        rows = rows.filter(action__startswith=action)
    return paginate(request, rows.order_by("-created_at", "-pk"), params)
