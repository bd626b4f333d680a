"""What a zone's deletion races with: the clusters that keep it in use, and how a claim ended. The state changes
themselves, each one conditional and atomic, are HostedZone's (claim_for_deletion, release_unstarted, start_teardown,
mark_deleted); the claim, which queues the teardown, is zone_gc.claim_for_deletion."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from provisioning.models import Cluster, Operation

if TYPE_CHECKING:
    from django.db.models import OuterRef, QuerySet

    from provisioning.models import Organization

UNFINISHED = Operation.UNFINISHED


class Outcome(StrEnum):
    QUEUED = "queued"
    IN_USE = "in-use"  # a cluster uses the zone: kept
    TAKEN = "taken"  # another GC run or worker got there first


def clusters_using(organization: Organization | int | OuterRef) -> QuerySet[Cluster]:
    """The clusters that keep their organization's zone in use (a cluster in error may still run ExternalDNS)."""
    return Cluster.objects.live().filter(organization=organization)
