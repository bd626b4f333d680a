"""Operations (background jobs): state, progress and log; retry a failed one."""

from uuid import UUID

from django.http import HttpResponse
from ninja import Path, Query, Router

from provisioning import scoping
from provisioning.services.operations import running as operations

from ..models import CHANGE, Operation
from . import schemas
from .pagination import PageParams, page_of, paginate
from .params import text_query
from .problems import Problem
from .responses import queue

router = Router(tags=["operations"])


@router.get("/operations", response=page_of(schemas.Operation))
def list_operations(
    request,
    params: Query[PageParams],
    organization: str = text_query("An organization's name."),
    state: schemas.OperationState | None = None,
    kind: schemas.OperationKind | None = None,
):
    """Operations of your organizations (staff: all), newest first."""
    rows = Operation.objects.for_user(request.user).select_related("organization", "cluster", "created_by")
    if organization:
        rows = rows.filter(organization__name=organization)
    if state:
        rows = rows.filter(state=state)
    if kind:
        rows = rows.filter(kind=kind)
    return paginate(request, rows.order_by("-created_at", "-pk"), params)


@router.get("/operations/{operation_id}", response={200: schemas.OperationDetail, 404: Problem})
def get_operation(request, operation_id: Path[UUID]):
    """Poll this until `finished`: then `state` is succeeded or failed (with `error`)."""
    return scoping.operation(request, operation_id)


@router.post(
    "/operations/{operation_id}/retry", response={202: schemas.Accepted, 403: Problem, 404: Problem, 409: Problem}
)
def retry_operation(request, response: HttpResponse, operation_id: Path[UUID]):
    """Start a failed cluster operation again; answers the new operation."""
    operation = scoping.operation(request, operation_id, CHANGE)
    return queue(response, operations.retry_operation, operation, request.user)
