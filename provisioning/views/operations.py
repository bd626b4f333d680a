"""Operation pages: live progress, log, error and retry."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ..services import operations, organizations

HTMX_STOP_POLLING = 286


@login_required
def operation_detail(request, pk):
    operation = organizations.get_operation_for_user(request.user, pk)
    context = {
        "operation": operation,
        "can_retry": operations.can_retry(operation) and organizations.can_write(request.user, operation.organization),
    }
    return render(request, "provisioning/operation_detail.html", context)


@login_required
def operation_status(request, pk):
    """The live status fragment. When the operation has finished: 286 stops htmx polling, and the page
    reloads so that everything on it (states, actions) shows the outcome."""
    operation = organizations.get_operation_for_user(request.user, pk)
    response = render(request, "provisioning/operation_detail.html#status", {"operation": operation})
    if operation.finished:
        response.status_code = HTMX_STOP_POLLING
        response["HX-Refresh"] = "true"
    return response


@login_required
@require_POST
def operation_retry(request, pk):
    operation = organizations.get_operation_for_user(request.user, pk)
    organizations.require_write(request.user, operation.organization, f"{request.method} {request.path}")
    try:
        retried = operations.retry_operation(operation, request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return redirect("operation", operation.pk)
    return redirect("operation", retried.pk)
