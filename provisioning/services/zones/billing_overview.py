"""The billing page's data: what each zone was charged and what the GC avoided (the ledger), and the deletions it plans."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from provisioning.models import ZoneCharge
from provisioning.rules import billing
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.zones import ledger as zone_ledger
from provisioning.services.zones.gc import plan

if TYPE_CHECKING:
    from datetime import datetime

    from django.db.models import QuerySet

    from provisioning.models import Organization
    from provisioning.services.zones.gc import PlannedZone


@dataclass
class PricedCharge:
    charge: ZoneCharge  # unsaved for a charge of this month that the GC has not recorded yet
    price: Decimal

    @property
    def recorded(self) -> bool:
        return self.charge.pk is not None


@dataclass
class BillingOverview:
    month: date
    charged: list[PricedCharge]
    avoided_young: list[PricedCharge]
    avoided_renewal: list[PricedCharge]
    scheduled: list[PlannedZone]

    @property
    def charged_total(self) -> Decimal:
        return sum((c.price for c in self.charged), Decimal(0))

    @property
    def avoided(self) -> list[PricedCharge]:
        return self.avoided_young + self.avoided_renewal

    @property
    def avoided_total(self) -> Decimal:
        return sum((c.price for c in self.avoided), Decimal(0))


def billing_overview(organizations: QuerySet[Organization], now: datetime) -> BillingOverview:
    """This month's ledger and schedule for these organizations' zones. The month's charges not recorded yet (a new
    month before the GC's first run) come from the zones themselves, after the recorded ones.

    Route53's price tiers count every zone of an AWS account, so prices are ranked within each account (the zone's);
    an avoided charge is valued at what it would have added to its account's bill for the month.
    """
    month = billing.month_start(now).date()
    visible = set(organizations.values_list("pk", flat=True))
    ledger = list(
        ZoneCharge.objects.filter(month=month).select_related("zone__organization").order_by("recorded_at", "pk")
    )
    # What the month charges is a fact of the zone rows, whether or not the GC has run since the month began.
    ledger += [
        ZoneCharge(zone=zone, month=month, kind=ZoneCharge.Kind.CHARGED)
        for zone in zone_ledger.unrecorded_charges(now).select_related("organization")
    ]
    by_account = defaultdict(list)
    for charge in ledger:
        by_account[charge.zone.aws_account or accounts.main().name].append(charge)
    priced = []
    for charges in by_account.values():
        charged = [c for c in charges if c.kind == ZoneCharge.Kind.CHARGED]
        avoided = [c for c in charges if c.kind != ZoneCharge.Kind.CHARGED]
        priced += [
            PricedCharge(c, p) for c, p in zip(charged + avoided, billing.zone_prices(len(charges)), strict=True)
        ]
    priced.sort(key=lambda p: (not p.recorded, p.charge.recorded_at or now, p.charge.pk or 0))
    mine = [p for p in priced if p.charge.zone.organization_id in visible]
    return BillingOverview(
        month=month,
        charged=[p for p in mine if p.charge.kind == ZoneCharge.Kind.CHARGED],
        avoided_young=[p for p in mine if p.charge.kind == ZoneCharge.Kind.AVOIDED_YOUNG],
        avoided_renewal=[p for p in mine if p.charge.kind == ZoneCharge.Kind.AVOIDED_RENEWAL],
        scheduled=[entry for entry in plan(now, organizations) if entry.scheduled],
    )
