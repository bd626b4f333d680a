"""The billing rule of hosted zones, as a pure function: a decision table and properties."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioning.rules.billing import (
    DELETE,
    FREE_PERIOD,
    KEEP,
    avoided_month,
    charged_months,
    decide_zone,
    month_start,
    next_month_start,
    zone_prices,
)

MARGIN = timedelta(minutes=15)
WINDOW = timedelta(hours=1)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "created,now,in_use,action,not_before",
    [
        # in use: always kept, whatever the age or the date
        (utc(2026, 11, 30, 23, 30), utc(2026, 11, 30, 23, 35), True, KEEP, None),
        (utc(2026, 1, 10), utc(2026, 11, 30, 23, 30), True, KEEP, None),
        # unused and young: deleted at once, while free
        (utc(2026, 11, 10, 8), utc(2026, 11, 10, 8, 1), False, DELETE, None),
        (utc(2026, 11, 10, 8), utc(2026, 11, 10, 19, 44, 59), False, DELETE, None),
        # the margin: from 11 h 45 min the deletion might end after 12 h, so the month counts as paid
        (utc(2026, 11, 10, 8), utc(2026, 11, 10, 19, 45), False, KEEP, utc(2026, 11, 30, 23)),
        (utc(2026, 11, 10, 8), utc(2026, 11, 13, 8), False, KEEP, utc(2026, 11, 30, 23)),
        # the final window before the month ends
        (utc(2026, 11, 10, 8), utc(2026, 11, 30, 22, 59, 59), False, KEEP, utc(2026, 11, 30, 23)),
        (utc(2026, 11, 10, 8), utc(2026, 11, 30, 23), False, DELETE, None),
        (utc(2026, 11, 10, 8), utc(2026, 11, 30, 23, 59, 59), False, DELETE, None),
        # a young zone created inside the final window is deleted, not kept into the next month
        (utc(2026, 11, 30, 23, 10), utc(2026, 11, 30, 23, 20), False, DELETE, None),
        # a young zone straddling the month boundary is still free
        (utc(2026, 11, 30, 14), utc(2026, 12, 1, 1), False, DELETE, None),
        # a paid zone just after the month started: the new month is paid, keep it to its end
        (utc(2026, 10, 3), utc(2026, 12, 1, 0, 0, 1), False, KEEP, utc(2026, 12, 31, 23)),
        # the year boundary
        (utc(2026, 12, 5), utc(2026, 12, 20), False, KEEP, utc(2026, 12, 31, 23)),
        (utc(2026, 12, 5), utc(2026, 12, 31, 23, 30), False, DELETE, None),
        # February, leap and not
        (utc(2028, 2, 10), utc(2028, 2, 20), False, KEEP, utc(2028, 2, 29, 23)),
        (utc(2027, 2, 10), utc(2027, 2, 20), False, KEEP, utc(2027, 2, 28, 23)),
        (utc(2028, 2, 10), utc(2028, 2, 28, 23, 30), False, KEEP, utc(2028, 2, 29, 23)),
        # other zones in the input: the month ends in UTC. 00:30 on Dec 1 in Paris is 23:30 on Nov 30 UTC.
        (utc(2026, 11, 2), datetime(2026, 12, 1, 0, 30, tzinfo=ZoneInfo("Europe/Paris")), False, DELETE, None),
        # ...and 23:30 on Nov 30 in New York is 04:30 on Dec 1 UTC: a new month, paid.
        (
            utc(2026, 11, 2),
            datetime(2026, 11, 30, 23, 30, tzinfo=ZoneInfo("America/New_York")),
            False,
            KEEP,
            utc(2026, 12, 31, 23),
        ),
        # a creation time in another zone: 20:00 in Tokyo is 11:00 UTC, so at 22:00 UTC it is 11 h old
        (datetime(2026, 11, 10, 20, tzinfo=ZoneInfo("Asia/Tokyo")), utc(2026, 11, 10, 22), False, DELETE, None),
    ],
)
def test_decision_table(created, now, in_use, action, not_before):
    decision = decide_zone(created, now, in_use, young_margin=MARGIN, final_window=WINDOW)
    assert (decision.action, decision.not_before) == (action, not_before)
    assert decision.reason
    if not_before is not None:
        assert decision.not_before.tzinfo == UTC


def test_the_rule_at_each_fixed_instant(instant):
    """The month and its final window are UTC's, whatever the instant's or the server's zone; ages are real hours."""
    local = instant.at.astimezone(ZoneInfo(instant.time_zone))
    for now in (instant.at, local):
        assert (month_start(now), next_month_start(now)) == (instant.month, instant.next_month)
    deadline = instant.next_month - WINDOW
    paid = (DELETE, None) if instant.at >= deadline else (KEEP, deadline)
    for created, expected in [
        (instant.at - timedelta(days=3), paid),
        (instant.at - timedelta(hours=11, minutes=50), paid),  # past the margin: charged, even if the wall says less
        (instant.at - timedelta(hours=11), (DELETE, None)),  # free, even if the wall says more
    ]:
        for now in (instant.at, local):
            decision = decide_zone(created, now, False, young_margin=MARGIN, final_window=WINDOW)
            assert (decision.action, decision.not_before) == expected, (created, now)
    three_days = charged_months(instant.at - timedelta(days=3), local)
    assert three_days[-1] == instant.month.date() and three_days == sorted(three_days)


def test_the_reasons_say_why():
    created = utc(2026, 11, 10, 8)
    assert "in use" in decide_zone(created, utc(2026, 11, 10, 9), True).reason
    assert decide_zone(created, utc(2026, 11, 10, 11, 5), False).reason == (
        "unused and created 3 h 05 min ago: deleting it now is free"
    )
    assert decide_zone(created, utc(2026, 11, 12), False).reason == (
        "unused, but this month is paid: kept for reuse until 2026-11-30 23:00 UTC, then deleted"
    )
    assert decide_zone(created, utc(2026, 11, 30, 23, 30), False).reason == (
        "unused, and next month's charge starts at 2026-12-01 00:00 UTC: deleting it now"
    )


def test_defaults_come_from_settings(settings):
    settings.ORGDNS_GC_YOUNG_MARGIN = timedelta(hours=2)
    settings.ORGDNS_GC_FINAL_WINDOW = timedelta(hours=6)
    created = utc(2026, 11, 10, 8)
    assert decide_zone(created, utc(2026, 11, 10, 17, 59), False).action == DELETE
    assert decide_zone(created, utc(2026, 11, 10, 18), False).not_before == utc(2026, 11, 30, 18)


def test_the_servers_time_zone_changes_nothing(settings):
    created, now = utc(2026, 11, 2), utc(2026, 11, 30, 23, 30)
    for tz in ("UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"):
        settings.TIME_ZONE = tz
        assert decide_zone(created, now, False).action == DELETE
        assert decide_zone(created, utc(2026, 11, 30, 12), False).not_before == utc(2026, 11, 30, 23)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"created_at": datetime(2026, 11, 2)}, "created_at must be timezone-aware"),
        ({"now": datetime(2026, 11, 20)}, "now must be timezone-aware"),
        ({"young_margin": timedelta(hours=12)}, "margin must be between 0 and 12 hours"),
        ({"young_margin": timedelta(minutes=-1)}, "margin must be between 0 and 12 hours"),
        ({"final_window": timedelta(0)}, "final window before a month starts must be more than 0"),
        ({"final_window": timedelta(days=2)}, "at most 1 day"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(kwargs, message):
    arguments = {"created_at": utc(2026, 11, 2), "now": utc(2026, 11, 20), "in_use": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        decide_zone(**arguments)


@pytest.mark.parametrize(
    "created,until,months",
    [
        (utc(2026, 11, 10, 8), utc(2026, 11, 10, 19, 59), []),  # deleted young: free
        (utc(2026, 11, 30, 14), utc(2026, 12, 1, 1), []),  # free across the month boundary too
        (utc(2026, 11, 10, 8), utc(2026, 11, 10, 20), [date(2026, 11, 1)]),  # 12 h: charged
        (utc(2026, 11, 30, 11), utc(2026, 12, 1, 0), [date(2026, 11, 1), date(2026, 12, 1)]),
        (utc(2026, 11, 15), utc(2026, 12, 31, 23, 59), [date(2026, 11, 1), date(2026, 12, 1)]),
        (utc(2026, 12, 15), utc(2027, 2, 3), [date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1)]),
    ],
)
def test_charged_months(created, until, months):
    assert charged_months(created, until) == months


def test_avoided_month_is_the_creation_month_for_young_deletions_else_the_next_one():
    assert avoided_month(utc(2026, 11, 10, 8), utc(2026, 11, 10, 9)) == (date(2026, 11, 1), True)
    assert avoided_month(utc(2026, 11, 10, 8), utc(2026, 11, 30, 23, 10)) == (date(2026, 12, 1), False)
    assert avoided_month(utc(2026, 12, 2), utc(2026, 12, 31, 23, 10)) == (date(2027, 1, 1), False)


@pytest.mark.parametrize(
    "count,total",
    [(0, Decimal("0")), (1, Decimal("0.50")), (25, Decimal("12.50")), (26, Decimal("12.60")), (100, Decimal("20.00"))],
)
def test_zone_prices_are_tiered(count, total):
    prices = zone_prices(count, first="0.50", after="0.10", tier=25)
    assert len(prices) == count and sum(prices, Decimal(0)) == total


def test_zone_prices_come_from_settings(settings):
    settings.ORGDNS_ZONE_PRICE_FIRST = Decimal("0.90")
    settings.ORGDNS_ZONE_PRICE_AFTER = Decimal("0.20")
    settings.ORGDNS_ZONE_PRICE_TIER = 2
    assert zone_prices(3) == [Decimal("0.90"), Decimal("0.90"), Decimal("0.20")]


# --- properties -------------------------------------------------------------------------------------

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.timezones(), allow_imaginary=False
)
ages = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400))
margins = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=11, minutes=59))
windows = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=1))


@given(moments, ages, margins, windows)
def test_a_zone_in_use_is_never_deleted(created, age, margin, window):
    decision = decide_zone(created, created + age, True, young_margin=margin, final_window=window)
    assert decision.action == KEEP and decision.not_before is None


@given(moments, ages, margins, windows)
def test_a_paid_zone_is_never_deleted_before_the_final_window(created, age, margin, window):
    now = created + age
    decision = decide_zone(created, now, False, young_margin=margin, final_window=window)
    if decision.action == DELETE and age >= FREE_PERIOD - margin:
        assert now >= next_month_start(now) - window


@given(moments, ages, margins, windows)
def test_a_young_deletion_always_comes_before_the_12_hour_mark(created, age, margin, window):
    now = created + age
    decision = decide_zone(created, now, False, young_margin=margin, final_window=window)
    if decision.action == DELETE and now < next_month_start(now) - window:
        assert age < FREE_PERIOD - margin  # so the deletion has `margin` to finish before it is charged


@given(moments, ages, margins, windows)
def test_a_kept_unused_zone_is_deleted_at_its_not_before(created, age, margin, window):
    now = created + age
    decision = decide_zone(created, now, False, young_margin=margin, final_window=window)
    if decision.action == KEEP:
        assert now < decision.not_before < next_month_start(now)
        later = decide_zone(created, decision.not_before, False, young_margin=margin, final_window=window)
        assert later.action == DELETE
    else:
        assert decision.not_before is None


@given(moments, ages, st.booleans(), st.timezones(), st.timezones())
def test_the_decision_does_not_depend_on_the_inputs_time_zones(created, age, in_use, zone_a, zone_b):
    now = created + age
    assert decide_zone(created.astimezone(zone_a), now.astimezone(zone_b), in_use) == decide_zone(
        created.astimezone(UTC), now.astimezone(UTC), in_use
    )
