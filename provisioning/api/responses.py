"""202 Accepted: an action has queued its operation, to be followed at the Location the response gives."""

from django.urls import reverse
from ninja import Status

from .problems import refused


def accepted(response, operation, **more):
    response["Location"] = reverse("api-v1:get_operation", args=[operation.pk])
    return Status(202, {"operation": operation, **more})


def queue(response, action, target, user):
    """action(target, user), a service's request that queues an operation: 202 with it, or 409 if the service refuses
    (what target is in does not allow it now)."""
    with refused(409):
        operation = action(target, user)
    return accepted(response, operation)
