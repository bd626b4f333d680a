"""The state changes of a zone's deletion that races depend on, each one conditional and atomic.

ACTIVE --claim--> DELETING (unstarted) --start--> DELETING (started) --teardown--> DELETED
An unstarted claim is released back to ACTIVE when a cluster turns up: by the claim's own re-check,
by the teardown before it starts, or by a register job that finds the zone claimed (it reclaims it).
Once started, a register job waits for the teardown to finish and then creates a fresh zone.
"""

from enum import StrEnum

from django.db import transaction

from ..models import Cluster, HostedZone, Operation
from .operations import start_operation

UNFINISHED = (Operation.State.QUEUED, Operation.State.RUNNING, Operation.State.RETRYING)


class Outcome(StrEnum):
    QUEUED = "queued"
    IN_USE = "in-use"  # a cluster uses the zone: kept
    TAKEN = "taken"  # another GC run or worker got there first


def clusters_using(organization):
    """The clusters that keep their organization's zone in use (a cluster in error may still run ExternalDNS)."""
    return Cluster.objects.live().filter(organization=organization)


def teardowns_of(organization):
    return Operation.objects.filter(organization=organization, kind=Operation.Kind.DELETE_ZONE).order_by("-created_at")


def claim_for_deletion(zone, user=None):
    """Claim an unused active zone and queue its teardown, atomically. Returns (Outcome, operation or None).

    A cluster registered meanwhile cannot lose the zone: its row is committed before its job runs, so
    either this re-check sees it, or the teardown's own re-check does (under the organization lock,
    before its point of no return), or its register job finds the unstarted claim and takes the zone back.
    """
    with transaction.atomic():
        if not HostedZone.objects.filter(pk=zone.pk, state=HostedZone.State.ACTIVE).update(
            state=HostedZone.State.DELETING
        ):
            return Outcome.TAKEN, None
        if clusters_using(zone.organization_id).exists():
            transaction.set_rollback(True)
            return Outcome.IN_USE, None
        return Outcome.QUEUED, start_operation(Operation.Kind.DELETE_ZONE, zone.organization, user=user)


def resume_teardown(zone, user=None, last_finished_before=None):
    """Queue a new teardown for a zone stuck in DELETING, unless one is queued or running (or, given
    `last_finished_before`, the last one ended after it). Returns (Outcome, operation or None)."""
    with transaction.atomic():
        if not HostedZone.objects.select_for_update().filter(pk=zone.pk, state=HostedZone.State.DELETING).exists():
            return Outcome.TAKEN, None
        last = teardowns_of(zone.organization_id).first()
        if last is not None and (
            last.state in UNFINISHED or (last_finished_before and last.finished_at > last_finished_before)
        ):
            return Outcome.TAKEN, None
        return Outcome.QUEUED, start_operation(Operation.Kind.DELETE_ZONE, zone.organization, user=user)


def release_unstarted(zone):
    """Give an unstarted claim back (DELETING → ACTIVE). False if the teardown has started (or it is no claim)."""
    return bool(
        HostedZone.objects.filter(pk=zone.pk, state=HostedZone.State.DELETING, teardown_started_at=None).update(
            state=HostedZone.State.ACTIVE
        )
    )


def start_teardown(zone, now):
    """Pass the point of no return. False if a cluster reclaimed the zone first."""
    return bool(
        HostedZone.objects.filter(pk=zone.pk, state=HostedZone.State.DELETING, teardown_started_at=None).update(
            teardown_started_at=now
        )
    )
