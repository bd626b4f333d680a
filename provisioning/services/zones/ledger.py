"""The cost ledger of hosted zones: a row per zone and month, charged, or avoided and why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provisioning.models import HostedZone, ZoneCharge
from provisioning.rules import billing

if TYPE_CHECKING:
    from datetime import datetime

    from django.db.models import QuerySet


def unrecorded_charges(now: datetime) -> QuerySet[HostedZone]:
    """The zones that still exist and that Route53 has charged for the month of `now`, without a row for it yet
    (the GC records them at its next run), oldest zone first."""
    return (
        HostedZone.objects.live()
        .filter(route53_deleted_at=None, aws_created_at__lte=now - billing.FREE_PERIOD)
        .exclude(charges__month=billing.month_start(now).date())
        .order_by("aws_created_at", "pk")
    )


def record_charges(now: datetime) -> None:
    """Add the months Route53 has charged the zones that still exist for, each once, oldest zone first."""
    rows = [
        ZoneCharge(zone=zone, month=month, kind=ZoneCharge.Kind.CHARGED)
        for zone in unrecorded_charges(now).only("pk", "aws_created_at")
        for month in billing.charged_months(zone.aws_created_at, now)
    ]
    ZoneCharge.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)


def final_ledger(zone: HostedZone) -> list[ZoneCharge]:
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
