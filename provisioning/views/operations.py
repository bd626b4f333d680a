"""Operation pages: live progress, log, error and retry."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from provisioning import scoping
from provisioning.services.operations import running as operations

from ..models import CHANGE

HTMX_STOP_POLLING = 286


def operation_detail(request, pk):
    operation = scoping.operation(request, pk)
    context = {
        "operation": operation,
        "can_retry": operation.can_retry and operation.organization.allows(request.user, CHANGE),
    }
    return render(request, "provisioning/operation_detail.html", context)


def operation_status(request, pk):
    """The live status fragment. When the operation has finished: 286 stops htmx polling, and the page
    reloads so that everything on it (states, actions) shows the outcome."""
    operation = scoping.operation(request, pk)
    response = render(request, "provisioning/operation_detail.html#status", {"operation": operation})
    if operation.finished:
        response.status_code = HTMX_STOP_POLLING
        response["HX-Refresh"] = "true"
    return response


@require_POST
def operation_retry(request, pk):
    operation = scoping.operation(request, pk, CHANGE)
    try:
        retried = operations.retry_operation(operation, request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return redirect("operation", operation.pk)
    return redirect("operation", retried.pk)
