"""The state changes of a zone's deletion that races depend on, each one conditional and atomic (the claim, which
queues the teardown, is zone_gc.claim_for_deletion).

ACTIVE --claim--> DELETING (unstarted) --start--> DELETING (started) --teardown--> DELETED
An unstarted claim is released back to ACTIVE when a cluster turns up: by the claim's own re-check,
by the teardown before it starts, or by a register job that finds the zone claimed (it reclaims it).
Once started, a register job waits for the teardown to finish and then creates a fresh zone.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from provisioning.models import Cluster, HostedZone, Operation

if TYPE_CHECKING:
    from datetime import datetime

    from django.db.models import OuterRef, QuerySet

    from provisioning.models import Organization

UNFINISHED = (Operation.State.QUEUED, Operation.State.RUNNING, Operation.State.RETRYING)


class Outcome(StrEnum):
    QUEUED = "queued"
    IN_USE = "in-use"  # a cluster uses the zone: kept
    TAKEN = "taken"  # another GC run or worker got there first


def clusters_using(organization: Organization | int | OuterRef) -> QuerySet[Cluster]:
    """The clusters that keep their organization's zone in use (a cluster in error may still run ExternalDNS)."""
    return Cluster.objects.live().filter(organization=organization)


def release_unstarted(zone: HostedZone) -> bool:
    """Give an unstarted claim back (DELETING → ACTIVE). False if the teardown has started (or it is no claim)."""
    return bool(
        HostedZone.objects.filter(pk=zone.pk, state=HostedZone.State.DELETING, teardown_started_at=None).update(
            state=HostedZone.State.ACTIVE
        )
    )


def start_teardown(zone: HostedZone, now: datetime) -> bool:
    """Pass the point of no return. False if a cluster reclaimed the zone first."""
    return bool(
        HostedZone.objects.filter(pk=zone.pk, state=HostedZone.State.DELETING, teardown_started_at=None).update(
            teardown_started_at=now
        )
    )
