"""Garbage collection of unused hosted zones (DESIGN.md §3): the plan, the teardown job and the cost ledger.

The rule itself is billing.decide_zone; the race-sensitive state changes are in zone_claims.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from .. import billing
from ..clients.errors import ProviderError
from ..models import HostedZone, Operation, ZoneCharge
from ..validators import iam_user_name
from . import accounts, zone_claims
from .leases import organization_lock
from .provisioning import aws_secret_path, is_our_delegation, tagged_as_ours

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
    def scheduled(self):
        """Whether the zone is on its way out: deleted now, later if it stays unused, or being deleted."""
        return self.action != billing.KEEP or self.not_before is not None


def billed_from(zone):
    """Route53 bills from the zone's creation there (rows without that time fall back to their own creation)."""
    return zone.aws_created_at or zone.created_at


# --- the plan ------------------------------------------------------------------------------------


def plan(now, organizations=None):
    """What the GC does with every active zone and every zone being deleted, in one query."""
    last_teardown = zone_claims.teardowns_of(OuterRef("organization"))
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


def _plan_zone(zone, now):
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


def apply(planned, now):
    """Claim the zones to delete and queue their teardowns; queue again the teardowns that stopped; update the ledger."""
    for entry in planned:
        if entry.action == billing.DELETE:
            entry.outcome, entry.operation = zone_claims.claim_for_deletion(entry.zone)
        elif entry.action == RESUME:
            entry.outcome, entry.operation = zone_claims.resume_teardown(
                entry.zone, last_finished_before=now - settings.ORGDNS_GC_RETRY_AFTER
            )
    record_charges(now)


def delete_now(zone, user):
    """Support staff's "delete this zone": the same claim as the GC's, or a new attempt at a stopped teardown."""
    if zone.state == HostedZone.State.DELETING:
        return zone_claims.resume_teardown(zone, user=user)
    return zone_claims.claim_for_deletion(zone, user=user)


def zone_status(organization, now):
    """The GC's view of this organization's zone (None if it has none active or being deleted)."""
    return next(iter(plan(now, [organization])), None)


# --- the teardown job ----------------------------------------------------------------------------


def delete_zone(operation, progress, backends):
    """Tear the organization's claimed zone down, in DESIGN.md §3 order.

    Every step is idempotent and progress is recorded on the zone row, so a re-run after a crash
    resumes where the last run stopped.
    """
    org = operation.organization
    with organization_lock(org):
        zone = HostedZone.objects.filter(organization=org, state=HostedZone.State.DELETING).first()
        if zone is None:
            progress.log(f"{org.name} has no zone being deleted: nothing to do")
            return
        if zone.teardown_started_at is None and not _begin(zone, progress):
            return
        aws = backends.for_account(accounts.of_zone(zone))
        if zone.route53_deleted_at is None:
            _delete_from_route53(zone, aws.route53(), aws.parent_zone_route53(), progress)
        delete_iam_user(org, aws.iam(), progress)
        vault = backends.vault()
        progress.step("Deleting the zone's AWS credentials from Vault, with every version", 90)
        vault.destroy(aws_secret_path(vault, org))
        _mark_deleted(zone)
        progress.log(f"zone {zone.name} deleted; its row is kept for history and the cost ledger")


def _begin(zone, progress):
    """Re-check usage inside the claim, then pass the point of no return. False if the zone is kept."""
    if zone_claims.clusters_using(zone.organization_id).exists():
        zone_claims.release_unstarted(zone)
        progress.log("a cluster was registered since the zone was queued for deletion: the zone is kept")
        return False
    if not zone_claims.start_teardown(zone, timezone.now()):
        progress.log("a cluster reclaimed the zone since it was queued for deletion: the zone is kept")
        return False
    return True


def _delete_from_route53(zone, route53, parent_route53, progress):
    progress.step("Removing the delegation from the parent zone", 10)
    _remove_delegation(zone, parent_route53, progress)
    progress.step(f"Deleting every record of {zone.name} but its SOA and NS", 25)
    records = records_to_delete(zone.zone_id, zone.name, route53)
    if records is None:
        progress.log(f"zone {zone.zone_id} is already gone from Route53")
    else:
        requests = route53.delete_record_sets(zone.zone_id, records)
        progress.log(f"deleted {len(records)} record sets in {requests} change requests")
        progress.step(f"Deleting zone {zone.zone_id}", 60)
        route53.delete_zone(zone.zone_id)
    zone.route53_deleted_at = timezone.now()
    HostedZone.objects.filter(pk=zone.pk).update(route53_deleted_at=zone.route53_deleted_at)


def _remove_delegation(zone, route53, progress):
    """First of all: a delegation left pointing at a deleted zone lets anyone take the subdomain over."""
    parent = settings.ORGDNS_PARENT_ZONE_ID
    if not parent:
        if zone.delegated:
            raise ProviderError(
                f"zone {zone.name} is delegated from a parent zone but ORGDNS_PARENT_ZONE_ID is not set: set it, so "
                "that the delegation is removed before the zone is deleted",
                service="route53",
                permanent=True,
            )
        return
    record = route53.delegation(parent, zone.name)
    if record is not None and is_our_delegation(record, zone.organization):
        route53.delete_record_set(parent, record)
        progress.log(f"removed the NS delegation of {zone.name} from parent zone {parent}")
    elif record is not None:
        progress.log(
            f"the NS record of {zone.name} in parent zone {parent} is not a delegation orgdns wrote: left alone"
        )
    HostedZone.objects.filter(pk=zone.pk).update(delegated=False)


def delete_iam_user(org, iam, progress):
    progress.step(f"Deleting IAM user {iam_user_name(org.name)}, its access keys and its policy", 75)
    progress.log(delete_our_iam_user(org, iam))


def delete_our_iam_user(org, iam):
    """Delete the organization's IAM user (access keys, inline policies, user) if it carries orgdns's tags for it.
    Returns what was done."""
    user = iam_user_name(org.name)
    tags = iam.user_tags(user)
    if tags is None:
        return f"IAM user {user} is already gone"
    if not tagged_as_ours(tags, org):
        return f"IAM user {user} was not created by orgdns: left alone"
    iam.delete_user(user)
    return f"deleted IAM user {user}, its access keys and its policies"


def records_to_delete(zone_id, zone_name, route53):
    """Every record set but the apex SOA and NS (Route53 deletes those with the zone); None if the zone is gone."""
    apex = zone_name.rstrip(".") + "."
    try:
        return [r for r in route53.record_sets(zone_id) if not (r["Name"] == apex and r["Type"] in ("SOA", "NS"))]
    except ProviderError as exc:
        if exc.code == "NoSuchHostedZone":
            return None
        raise


def _mark_deleted(zone):
    with transaction.atomic():
        HostedZone.objects.filter(pk=zone.pk).update(state=HostedZone.State.DELETED, deleted_at=timezone.now())
        ZoneCharge.objects.bulk_create(_final_ledger(zone), ignore_conflicts=True)


def mark_teardown_failed(operation, message):
    """A teardown that failed before deleting anything gives its claim back, so the zone is planned afresh.

    One that failed later leaves the zone DELETING: shown on the pages, resumed by the GC.
    """
    zone = HostedZone.objects.filter(organization=operation.organization, state=HostedZone.State.DELETING).first()
    if zone is not None:
        zone_claims.release_unstarted(zone)


# --- the cost ledger -----------------------------------------------------------------------------


def record_charges(now):
    """Add the months Route53 has charged the zones that still exist for, each once, oldest zone first."""
    due = (
        HostedZone.objects.exclude(state=HostedZone.State.DELETED)
        .filter(route53_deleted_at=None, aws_created_at__lte=now - billing.FREE_PERIOD)
        .exclude(charges__month=billing.month_start(now).date())
        .only("pk", "aws_created_at")
        .order_by("aws_created_at", "pk")
    )
    rows = [
        ZoneCharge(zone=zone, month=month, kind=ZoneCharge.Kind.CHARGED)
        for zone in due
        for month in billing.charged_months(zone.aws_created_at, now)
    ]
    ZoneCharge.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)


def _final_ledger(zone):
    """The months a deleted zone was charged for, and the one its deletion saved."""
    if zone.aws_created_at is None:  # never created in Route53: never billed
        return []
    created, ended = zone.aws_created_at, zone.route53_deleted_at
    rows = [
        ZoneCharge(zone=zone, month=m, kind=ZoneCharge.Kind.CHARGED) for m in billing.charged_months(created, ended)
    ]
    month, young = billing.avoided_month(created, ended)
    kind = ZoneCharge.Kind.AVOIDED_YOUNG if young else ZoneCharge.Kind.AVOIDED_RENEWAL
    return [*rows, ZoneCharge(zone=zone, month=month, kind=kind)]


@dataclass
class PricedCharge:
    charge: ZoneCharge
    price: Decimal


@dataclass
class BillingOverview:
    month: date
    charged: list  # PricedCharge
    avoided_young: list  # PricedCharge
    avoided_renewal: list  # PricedCharge
    scheduled: list  # PlannedZone

    @property
    def charged_total(self):
        return sum((c.price for c in self.charged), Decimal(0))

    @property
    def avoided(self):
        return self.avoided_young + self.avoided_renewal

    @property
    def avoided_total(self):
        return sum((c.price for c in self.avoided), Decimal(0))


def billing_overview(organizations, now):
    """This month's ledger and schedule for these organizations' zones.

    Route53's price tiers count every zone of an AWS account, so prices are ranked within each account (the zone's);
    an avoided charge is valued at what it would have added to its account's bill for the month.
    """
    month = billing.month_start(now).date()
    visible = set(organizations.values_list("pk", flat=True))
    ledger = list(
        ZoneCharge.objects.filter(month=month).select_related("zone__organization").order_by("recorded_at", "pk")
    )
    by_account = defaultdict(list)
    for charge in ledger:
        by_account[charge.zone.aws_account or accounts.main().name].append(charge)
    priced = []
    for charges in by_account.values():
        charged = [c for c in charges if c.kind == ZoneCharge.Kind.CHARGED]
        avoided = [c for c in charges if c.kind != ZoneCharge.Kind.CHARGED]
        priced += [PricedCharge(c, p) for c, p in zip(charged + avoided, billing.zone_prices(len(charges)))]
    priced.sort(key=lambda p: (p.charge.recorded_at, p.charge.pk))
    mine = [p for p in priced if p.charge.zone.organization_id in visible]
    return BillingOverview(
        month=month,
        charged=[p for p in mine if p.charge.kind == ZoneCharge.Kind.CHARGED],
        avoided_young=[p for p in mine if p.charge.kind == ZoneCharge.Kind.AVOIDED_YOUNG],
        avoided_renewal=[p for p in mine if p.charge.kind == ZoneCharge.Kind.AVOIDED_RENEWAL],
        scheduled=[entry for entry in plan(now, organizations) if entry.scheduled],
    )
