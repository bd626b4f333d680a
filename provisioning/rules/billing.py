"""Route53 billing of hosted zones, as pure functions (docs/gc-billing.md).

Route53 charges a zone for a whole month at creation and again on the 1st (UTC) of every later
month; a zone deleted within 12 hours of its creation is not charged at all. Every function here
works in UTC whatever the zone of its inputs or the server's TIME_ZONE, and touches no database.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings

FREE_PERIOD = timedelta(hours=12)
KEEP = "keep"
DELETE = "delete"


@dataclass(frozen=True)
class ZoneDecision:
    action: str  # KEEP or DELETE
    reason: str
    not_before: datetime | None  # from when an unused zone is deleted if it stays unused (UTC)


def decide_zone(created_at, now, in_use, *, young_margin=None, final_window=None):
    """What the GC does with a zone created at `created_at`, at `now`.

    An unused zone is deleted while it is still free (younger than 12 h minus `young_margin`, so that
    the deletion completes in time); otherwise its month is paid, so it is kept for reuse until
    `final_window` before the next month's charge, then deleted.
    """
    young_margin = settings.ORGDNS_GC_YOUNG_MARGIN if young_margin is None else young_margin
    final_window = settings.ORGDNS_GC_FINAL_WINDOW if final_window is None else final_window
    if not timedelta(0) <= young_margin < FREE_PERIOD:
        raise ValueError(f"the young-zone margin must be between 0 and 12 hours, not {young_margin}")
    if not timedelta(0) < final_window <= timedelta(days=1):
        raise ValueError(
            f"the final window before a month starts must be more than 0 and at most 1 day, not {final_window}"
        )
    created_at, now = as_utc(created_at, "created_at"), as_utc(now, "now")

    if in_use:
        return ZoneDecision(KEEP, "in use: its organization has a cluster", None)
    free_until = created_at + FREE_PERIOD - young_margin
    if now < free_until:
        return ZoneDecision(
            DELETE, f"unused and created {format_duration(now - created_at)} ago: deleting it now is free", None
        )
    renewal = next_month_start(now)
    deadline = renewal - final_window
    if now >= deadline:
        return ZoneDecision(
            DELETE, f"unused, and next month's charge starts at {_stamp(renewal)}: deleting it now", None
        )
    return ZoneDecision(
        KEEP, f"unused, but this month is paid: kept for reuse until {_stamp(deadline)}, then deleted", deadline
    )


def as_utc(moment, name="datetime"):
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(UTC)


def month_start(moment):
    """The first instant (UTC) of the month that `moment` falls in, in UTC."""
    moment = as_utc(moment)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month_start(moment):
    start = month_start(moment)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def months_spanned(start, end):
    """First days of the months from the one holding `start` to the one holding `end`, inclusive."""
    months, month, last = [], month_start(start), month_start(end)
    while month <= last:
        months.append(month.date())
        month = next_month_start(month)
    return months


def charged_months(created_at, until):
    """The months a zone living from `created_at` to `until` (its deletion, or now) is charged for.

    None ([]) while it is younger than 12 hours, or if it was deleted that young.
    """
    if as_utc(until) - as_utc(created_at) < FREE_PERIOD:
        return []
    return months_spanned(created_at, until)


def avoided_month(created_at, deleted_at):
    """The month whose charge deleting the zone at `deleted_at` saved, and whether it was a young deletion."""
    if as_utc(deleted_at) - as_utc(created_at) < FREE_PERIOD:
        return month_start(created_at).date(), True
    return next_month_start(deleted_at).date(), False


def zone_prices(count, *, first=None, after=None, tier=None):
    """The price of each of `count` zones charged in one month: `first` for the first `tier`, `after` beyond."""
    first = settings.ORGDNS_ZONE_PRICE_FIRST if first is None else Decimal(first)
    after = settings.ORGDNS_ZONE_PRICE_AFTER if after is None else Decimal(after)
    tier = settings.ORGDNS_ZONE_PRICE_TIER if tier is None else tier
    return [first if rank < tier else after for rank in range(count)]


def format_duration(delta):
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _stamp(moment):
    return f"{moment:%Y-%m-%d %H:%M} UTC"
