"""Garbage collection of unused hosted zones (docs/gc-billing.md): which to delete when, and queueing their teardown
(zone_jobs) and the ledger (zone_ledger).

The rule itself is billing.decide_zone; the race-sensitive state changes are in zone_claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypedDict

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Subquery

from provisioning.models import HostedZone, Operation
from provisioning.rules import billing
from provisioning.services.zones import claims as zone_claims
from provisioning.services.zones.jobs import DeleteZone
from provisioning.services.zones.ledger import record_charges

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.contrib.auth.models import User
    from django.db.models import QuerySet
    from django_stubs_ext import WithAnnotations

    from provisioning.models import Organization

RESUME = "resume"  # a teardown that stopped is queued again
DELETING = "deleting"  # a teardown is under way, or waits to be resumed (from not_before)


@dataclass
class PlannedZone:
    zone: HostedZone
    age: timedelta
    action: str  # billing.KEEP, billing.DELETE, RESUME or DELETING
    reason: str
    not_before: datetime | None = None
    outcome: str = ""  # what applying the plan did (zone_claims.Outcome)
    operation: Operation | None = None

    @property
    def scheduled(self) -> bool:
        """Whether the zone is on its way out: deleted now, later if it stays unused, or being deleted."""
        return self.action != billing.KEEP or self.not_before is not None


def billed_from(zone: HostedZone) -> datetime:
    """Route53 bills from the zone's creation there (rows without that time fall back to their own creation)."""
    return zone.aws_created_at or zone.created_at


# --- the plan ------------------------------------------------------------------------------------


def plan(now: datetime, organizations: Iterable[Organization] | None = None) -> list[PlannedZone]:
    """What the GC does with every active zone and every zone being deleted, in one query."""
    last_teardown = teardowns_of(OuterRef("organization"))
    zones = (
        HostedZone.objects.filter(state__in=[HostedZone.State.ACTIVE, HostedZone.State.DELETING])
        .select_related("organization")
        .annotate(
            in_use=Exists(zone_claims.clusters_using(OuterRef("organization"))),
            teardown_id=Subquery(last_teardown.values("id")[:1]),
            teardown_state=Subquery(last_teardown.values("state")[:1]),
            teardown_finished_at=Subquery(last_teardown.values("finished_at")[:1]),
            teardown_error=Subquery(last_teardown.values("error")[:1]),
        )
        .order_by("organization__name")
    )
    if organizations is not None:
        zones = zones.filter(organization__in=organizations)
    return [_plan_zone(zone, now) for zone in zones]


class LastTeardown(TypedDict):
    """What plan() annotates each zone with."""

    in_use: bool
    teardown_state: str | None
    teardown_finished_at: datetime | None
    teardown_error: str | None


def _plan_zone(zone: WithAnnotations[HostedZone, LastTeardown], now: datetime) -> PlannedZone:
    created = billed_from(zone)
    age = now - created
    if zone.state == HostedZone.State.ACTIVE:
        decision = billing.decide_zone(created, now, zone.in_use)
        return PlannedZone(zone, age, decision.action, decision.reason, decision.not_before)
    if zone.teardown_state in zone_claims.UNFINISHED:
        return PlannedZone(zone, age, DELETING, f"its teardown is {zone.teardown_state}")
    stopped = "no teardown is queued" if zone.teardown_state is None else f"its last teardown {zone.teardown_state}"
    if zone.teardown_error:
        stopped += f" ({zone.teardown_error})"
    resume_at = zone.teardown_finished_at + settings.ORGDNS_GC_RETRY_AFTER if zone.teardown_finished_at else now
    if now < resume_at:
        return PlannedZone(zone, age, DELETING, f"{stopped}: resumed from {resume_at:%Y-%m-%d %H:%M} UTC", resume_at)
    return PlannedZone(zone, age, RESUME, f"{stopped}: resuming it")


def apply(planned: Iterable[PlannedZone], now: datetime) -> None:
    """Claim the zones to delete and queue their teardowns; queue again the teardowns that stopped; update the ledger."""
    for entry in planned:
        if entry.action == billing.DELETE:
            entry.outcome, entry.operation = claim_for_deletion(entry.zone)
        elif entry.action == RESUME:
            entry.outcome, entry.operation = resume_teardown(
                entry.zone, last_finished_before=now - settings.ORGDNS_GC_RETRY_AFTER
            )
    record_charges(now)


def delete_now(zone: HostedZone, user: User) -> tuple[zone_claims.Outcome, Operation | None]:
    """Support staff's "delete this zone": the same claim as the GC's, or a new attempt at a stopped teardown."""
    if zone.state == HostedZone.State.DELETING:
        return resume_teardown(zone, user=user)
    return claim_for_deletion(zone, user=user)


def zone_status(organization: Organization, now: datetime) -> PlannedZone | None:
    """The GC's view of this organization's zone (None if it has none active or being deleted)."""
    return next(iter(plan(now, [organization])), None)


# --- the teardown job ----------------------------------------------------------------------------


# --- the cost ledger -----------------------------------------------------------------------------


def teardowns_of(organization: Organization | int | OuterRef) -> QuerySet[Operation]:
    return Operation.objects.filter(organization=organization, kind=DeleteZone.name).order_by("-created_at", "-pk")


def claim_for_deletion(zone: HostedZone, user: User | None = None) -> tuple[zone_claims.Outcome, Operation | None]:
    """Claim an unused active zone and queue its teardown, atomically. Returns (Outcome, operation or None).

    A cluster registered meanwhile cannot lose the zone: its row is committed before its job runs, so
    either this re-check sees it, or the teardown's own re-check does (under the organization lock,
    before its point of no return), or its register job finds the unstarted claim and takes the zone back.
    """
    with transaction.atomic():
        if not zone.claim_for_deletion():
            return zone_claims.Outcome.TAKEN, None
        if zone_claims.clusters_using(zone.organization_id).exists():
            transaction.set_rollback(True)
            return zone_claims.Outcome.IN_USE, None
        return zone_claims.Outcome.QUEUED, DeleteZone.enqueue(zone.organization, user)


def resume_teardown(
    zone: HostedZone, user: User | None = None, last_finished_before: datetime | None = None
) -> tuple[zone_claims.Outcome, Operation | None]:
    """Queue a new teardown for a zone stuck in DELETING, unless one is queued or running (or, given
    `last_finished_before`, the last one ended after it). Returns (Outcome, operation or None)."""
    with transaction.atomic():
        if not HostedZone.objects.select_for_update().filter(pk=zone.pk, state=HostedZone.State.DELETING).exists():
            return zone_claims.Outcome.TAKEN, None
        last = teardowns_of(zone.organization_id).first()
        if last is not None and (
            last.state in zone_claims.UNFINISHED
            or (last_finished_before and last.finished_at and last.finished_at > last_finished_before)
        ):
            return zone_claims.Outcome.TAKEN, None
        return zone_claims.Outcome.QUEUED, DeleteZone.enqueue(zone.organization, user)
