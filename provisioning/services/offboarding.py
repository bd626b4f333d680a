"""Offboarding an organization: confirm, stop its work, queue the job that removes everything of it (teardown.py).

The organization row stays, as a tombstone in state `offboarded`: its audit trail and its zones' cost ledger keep
pointing at it, and it keeps its name, so that nobody else can take over `<name>.<base-domain>` — a name the former
tenant's users, links and trust in its CA (name-constrained to that zone) may still point at.
"""

import logging

import django_rq
import redis
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from ..clients.errors import ProviderError
from ..models import Operation, Organization
from . import audit
from .operations import start_operation

log = logging.getLogger(__name__)

CANCELLED = "cancelled: organization offboarded"
# Left to run: the GC's teardown of the zone is what offboarding hands the zone to.
NOT_CANCELLED = (Operation.Kind.OFFBOARD, Operation.Kind.DELETE_ZONE)


def refusal(organization):
    return f"{organization.name} is {organization.state}: nothing new can be started in it."


def require_active(organization):
    """ValidationError unless the organization is active. Inside a transaction its row stays locked until the end, so
    that an offboarding that starts meanwhile waits for the transaction and then cancels what it queued."""
    rows = Organization.objects.only("state", "name")
    if transaction.get_connection().in_atomic_block:
        rows = rows.select_for_update()
    current = rows.get(pk=organization.pk)
    if not current.active:
        raise ValidationError(refusal(current))


def refuse_in_job(organization):
    """For the jobs that create something: a permanent failure once the organization is being offboarded."""
    current = Organization.objects.only("state", "name").get(pk=organization.pk)
    if not current.active:
        raise ProviderError(refusal(current), service="orgdns", permanent=True)


def offboard_organization(organization, confirmation, user=None):
    """Queue the offboarding of the organization; confirmation must be its name. Starts it again if the last attempt
    failed. ValidationError, with nothing changed, otherwise."""
    confirm(organization, confirmation)
    with transaction.atomic():
        current = Organization.objects.select_for_update().get(pk=organization.pk)
        if current.state == Organization.State.OFFBOARDED:
            raise ValidationError(f"{current.name} was offboarded on {current.offboarded_at:%Y-%m-%d %H:%M} UTC.")
        unfinished = running_offboarding(current)
        if unfinished is not None:
            raise ValidationError(f"{current.name} is already being offboarded (operation {unfinished.pk}).")
        Organization.objects.filter(pk=current.pk).update(state=Organization.State.OFFBOARDING)
        cancel_waiting_operations(current)
        return start_operation(Operation.Kind.OFFBOARD, current, user=user)


def running_offboarding(organization):
    """The organization's offboarding operation that has not finished, if any."""
    return organization.operations.filter(kind=Operation.Kind.OFFBOARD).exclude(state__in=Operation.FINISHED).first()


def confirm(organization, confirmation):
    """ValidationError unless confirmation is the organization's name."""
    if (confirmation or "").strip() != organization.name:
        raise ValidationError(
            f"To delete the organization, type its name, {organization.name}, exactly: "
            f"{(confirmation or '').strip()[:63]!r} is not it. Nothing was changed."
        )


def cancel_waiting_operations(organization):
    """Fail the organization's operations that are queued or waiting to be retried (not the running ones: the
    offboarding waits for those). Returns them."""
    waiting = list(
        organization.operations.filter(state__in=[Operation.State.QUEUED, Operation.State.RETRYING]).exclude(
            kind__in=NOT_CANCELLED
        )
    )
    cancelled = []
    for operation in waiting:
        ended = Operation.objects.filter(
            pk=operation.pk, state__in=[Operation.State.QUEUED, Operation.State.RETRYING]
        ).update(state=Operation.State.FAILED, error=CANCELLED, finished_at=timezone.now())
        if ended:
            cancelled.append(operation)
            audit.record(f"{operation.kind}.cancelled", operation, organization=organization, detail=CANCELLED)
            transaction.on_commit(lambda pk=str(operation.pk): cancel_job(pk))
    return cancelled


def cancel_job(job_id):
    """Take the RQ job off its queue (the row, already failed, is what counts: a job that runs anyway does nothing)."""
    try:
        Job.fetch(job_id, connection=django_rq.get_connection("default")).cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass
    except redis.RedisError as exc:
        log.warning("could not cancel RQ job %s (its operation is failed already): %s", job_id, exc)
