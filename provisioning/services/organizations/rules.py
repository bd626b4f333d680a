"""What may start in an organization: nothing new once it is being offboarded (the request side and the jobs check it)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from provisioning.clients.errors import ProviderError
from provisioning.models import Organization


def refusal(organization: Organization) -> str:
    return f"{organization.name} is {organization.state}: nothing new can be started in it."


def require_active(organization: Organization) -> None:
    """ValidationError unless the organization is active. Inside a transaction its row stays locked until the end, so
    that an offboarding that starts meanwhile waits for the transaction and then cancels what it queued."""
    rows = Organization.objects.only("state", "name")
    if transaction.get_connection().in_atomic_block:
        rows = rows.select_for_update()
    current = rows.get(pk=organization.pk)
    if not current.active:
        raise ValidationError(refusal(current))


def refuse_in_job(organization: Organization) -> None:
    """For the jobs that create something: a permanent failure once the organization is being offboarded."""
    current = Organization.objects.only("state", "name").get(pk=organization.pk)
    if not current.active:
        raise ProviderError(refusal(current), service="orgdns", permanent=True)
