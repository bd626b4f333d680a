"""The Route53 budget model (provisioning/rules/budget.py): pure, no servers."""

import math

import pytest

from provisioning.clients import externaldns
from provisioning.rules import budget
from provisioning.rules.budget import TODAY, Budget, Flags

# Measured with a real ExternalDNS v0.23.0 in a local cluster, counted by devstack/awsproxy.py in front of moto
# (bench/externaldns_calls.py, 3 syncs at --interval=15s, 2 Dec 2026). Calls per sync, by operation.
# `records` is what the bench puts in the zone; the zone also holds its SOA and NS (+2 record sets).
MEASURED_TODAY = {  # orgdns's flags before issue #9 (no caches, no events)
    # (zones in the account, records, one change per sync?): {operation: calls per sync}
    (1, 10, False): {"ListHostedZones": 2, "ListResourceRecordSets": 1},
    (1, 10, True): {"ListHostedZones": 3, "ListResourceRecordSets": 1, "ChangeResourceRecordSets": 1},
    (1, 1000, False): {"ListHostedZones": 2, "ListResourceRecordSets": 4},
    (1, 1000, True): {"ListHostedZones": 3, "ListResourceRecordSets": 4, "ChangeResourceRecordSets": 1},
    (150, 10, False): {"ListHostedZones": 4, "ListResourceRecordSets": 1},  # --zones 150: two pages of zones
    (150, 10, True): {"ListHostedZones": 6, "ListResourceRecordSets": 1, "ChangeResourceRecordSets": 1},
}
MEASURED_TODAY_PER_HOUR_IDLE_10 = 180  # the bench's "10 records, idle ... 180 calls/hour" at --interval=1m
# The same with --aws-zones-cache-duration=1h --txt-cache-interval=1h --events --min-event-sync-interval=5s.
MEASURED_CACHED = {
    (1, 10, False): {},  # "10 records, idle 0.00 calls/sync"
    (1, 10, True): {"ChangeResourceRecordSets": 1},
    (1, 1000, False): {},
    (1, 1000, True): {"ChangeResourceRecordSets": 1},
}
CACHED = Flags(interval=15, zones_cache=3600, txt_cache=3600, events=True, min_event_sync=5)


@pytest.mark.parametrize(("key", "calls"), MEASURED_TODAY.items(), ids=str)
def test_the_model_matches_the_measured_calls_without_caches(key, calls):
    zones, records, changed = key
    assert budget.sync_calls(TODAY, zones, records + 2, changed=changed) == sum(calls.values())


def test_the_model_matches_the_measured_calls_per_hour():
    assert budget.calls_per_hour(TODAY, 1, 10 + 2) == MEASURED_TODAY_PER_HOUR_IDLE_10


@pytest.mark.parametrize(("key", "calls"), MEASURED_CACHED.items(), ids=str)
def test_the_model_matches_the_measured_calls_with_caches(key, calls):
    zones, records, changed = key
    assert budget.sync_calls(CACHED, zones, records + 2, changed=changed) == sum(calls.values())


def test_pages():
    assert [budget.zone_pages(z) for z in (0, 1, 100, 101, 500)] == [1, 1, 1, 2, 5]
    assert [budget.record_pages(r) for r in (2, 300, 301, 10_000)] == [1, 1, 2, 34]


def test_an_uncached_sync_reads_the_zones_twice_and_every_record_page():
    assert budget.sync_calls(TODAY, zones=250, records=1000) == 2 * 3 + 4
    assert budget.sync_calls(TODAY, zones=250, records=1000, changed=True) == 3 * 3 + 4 + 1
    assert budget.start_calls(TODAY, zones=250, records=1000) == 2 * 3 + 4


def test_with_caches_an_idle_sync_costs_nothing_and_a_change_one_call():
    cached = Flags(interval=60, zones_cache=3600, txt_cache=600)
    assert budget.sync_calls(cached, zones=250, records=1000) == 0
    assert budget.sync_calls(cached, zones=250, records=1000, changed=True) == 1
    assert budget.start_calls(cached, zones=250, records=1000) == 3 + 4


def test_with_caches_only_the_expiries_cost():
    cached = Flags(interval=60, zones_cache=3540, txt_cache=540)  # zones every 60th sync, records every 10th
    assert budget.calls_per_hour(cached, zones=250, records=1000) == pytest.approx(3 * 1 + 4 * 6)
    # A cache of exactly k intervals is only found expired at the (k+1)th sync (its clock starts after the read).
    exact = Flags(interval=60, zones_cache=3600, txt_cache=600)
    assert budget.calls_per_hour(exact, zones=250, records=1000) == pytest.approx(3 * 60 / 61 + 4 * 60 / 11)


def test_changes_cost_one_call_per_sync_that_applies_any():
    assert budget.busy_syncs(0, 60) == 0
    assert budget.busy_syncs(1, 60) == pytest.approx(1, rel=0.01)  # rare changes: one sync each
    assert budget.busy_syncs(6000, 60) == pytest.approx(60)  # many: every sync applies some
    idle = budget.calls_per_hour(TODAY, 1, 12)
    assert budget.calls_per_hour(TODAY, 1, 12, changes_per_hour=6) == pytest.approx(idle + 2 * budget.busy_syncs(6, 60))


def test_events_sync_soon_after_a_change_at_most_once_per_min_event_sync_interval():
    events = Flags(interval=3600, zones_cache=7200, txt_cache=3000, events=True, min_event_sync=45)
    syncs, changing = budget.syncs_per_hour(events, changes_per_hour=10_000)
    assert changing == pytest.approx(3600 / 45) and syncs == pytest.approx(1 + 80)
    assert budget.change_latency(events) == (budget.EVENT_DELAY + budget.SYNC_TIME, 45 + budget.SYNC_TIME)
    assert budget.change_latency(TODAY) == (30 + budget.SYNC_TIME, 60 + budget.SYNC_TIME)


def test_the_fleet_is_the_sum_of_its_clusters():
    assert budget.fleet_calls_per_second(1000, TODAY, 1, 12) == pytest.approx(1000 * 180 / 3600)


def test_flags_render_as_externaldns_durations():
    flags = Flags(interval=3725, zones_cache=7200, txt_cache=90, events=True, min_event_sync=45)
    assert flags.args() == [
        "--interval=1h2m5s",
        "--aws-zones-cache-duration=2h",
        "--txt-cache-interval=1m30s",
        "--events",
        "--min-event-sync-interval=45s",
    ]
    assert TODAY.args() == ["--interval=1m"]
    assert TODAY.args() == externaldns.PLAIN_RESYNC  # an ExternalDNS without chosen flags runs as before the budget


@pytest.mark.parametrize("clusters", [1, 10, 100, 300, 500, 1000, 1500])
def test_the_chosen_flags_keep_the_fleet_within_its_share(clusters):
    b = Budget()
    zones = min(clusters, 500) + 1
    intervals = [budget.externaldns_flags(clusters, zones, f"owner-{i}", b).interval for i in range(20)]
    for i in range(20):
        flags = budget.externaldns_flags(clusters, zones, f"owner-{i}", b)
        assert flags.events and flags.zones_cache and flags.txt_cache
        assert flags.txt_cache < flags.interval  # so that every resync reads the records again
        assert b.min_interval <= flags.interval <= b.max_interval * (1 + b.jitter)
        per_second = budget.fleet_calls_per_second(clusters, flags, zones, b.records, b.changes_per_hour)
        assert per_second <= b.account_rate * b.fleet_share
        assert budget.change_latency(flags)[1] <= 60
    # Jittered: the intervals of different clusters spread over most of the jitter, so their resyncs drift apart.
    assert max(intervals) - min(intervals) >= 0.5 * Budget().jitter * min(intervals)


def test_the_interval_grows_with_the_fleet_and_is_as_short_as_the_share_allows():
    b = Budget()
    assert budget.resync_interval(10, 11, b) == b.min_interval  # a small fleet keeps today's interval
    intervals = [budget.resync_interval(n, min(n, 500) + 1, b) for n in (100, 400, 700, 1000, 1300)]
    assert intervals == sorted(intervals) and intervals[-1] > intervals[0]
    n, interval = 1000, budget.resync_interval(1000, 501, b)
    shorter = budget._flags(interval - 2, b)
    assert n * budget.calls_per_hour(shorter, 501, b.records, b.changes_per_hour) > b.fleet_per_hour
    assert budget.resync_interval(100_000, 501, b) == b.max_interval  # more than an account holds


def test_the_jitter_is_deterministic_per_owner():
    assert budget.jitter_fraction("acme-prod") == budget.jitter_fraction("acme-prod")
    assert budget.jitter_fraction("acme-prod") != budget.jitter_fraction("acme-dev")
    assert all(0 <= budget.jitter_fraction(f"o{i}") < 1 for i in range(100))


def test_a_cluster_is_re_rendered_when_its_interval_is_off_by_more_than_the_threshold():
    b = Budget()
    wanted = budget.cluster_flags(100, "acme-prod", b)
    assert wanted == budget.externaldns_flags(1, 1, "acme-prod", Budget(min_interval=100))
    assert budget.cluster_flags(100, budget=b).interval == 100  # no owner: no jitter
    assert budget.needs_rerender(None, wanted, 0.2)  # flags not known
    assert not budget.needs_rerender(wanted, wanted, 0.2)
    for interval, stale in [
        (wanted.interval * 0.8, False),
        (wanted.interval * 0.79, True),
        (wanted.interval * 1.2, False),
        (wanted.interval * 1.21, True),
    ]:
        assert budget.needs_rerender(Flags(**{**wanted.__dict__, "interval": interval}), wanted, 0.2) == stale, interval
    assert budget.needs_rerender(Flags(**{**wanted.__dict__, "min_event_sync": 5}), wanted, 0.2)
    assert budget.needs_rerender(TODAY, wanted, 10)  # no events


def test_an_accounts_load_is_what_each_caller_spends_of_its_budget_and_the_quotas():
    load = budget.AccountLoad(
        account_rate=10,
        fleet_budget=6,
        orgdns_budget=3,
        fleet_rate=4.8,
        orgdns_rate=1.5,
        zones=400,
        zone_quota=500,
        iam_users=400,
        iam_user_quota=5000,
    )
    assert (load.fleet_used, load.orgdns_used, load.total_used) == pytest.approx((0.8, 0.5, 0.63))
    assert load.headroom == pytest.approx(3.7)
    assert (load.zones_used, load.iam_users_used) == (0.8, 0.08)
    assert load.above(0.8) == []  # at 80 %, not above
    above = load.above(0.79)
    assert above == [
        "the ExternalDNS fleet's estimated 4.80 calls/s of its 6.00 (80%)",
        "400 hosted zones of the quota of 500 (80%)",
    ]
    assert load.above(0.07)[-1] == "400 IAM users of the cap of 5000 (8%)"
    over = budget.AccountLoad(10, 6, 3, 7.0, 4.0, 0, 500, 0, 5000)
    assert over.headroom == -1 and "11.00 calls/s of the account's 10.00 (110%)" in over.above(0.8)
    assert budget.AccountLoad(10, 6, 0, 0, 0.5, 0, 0, 0, 0).above(0.8) == [
        "orgdns's measured 0.50 calls/s of its 0.00 (none allowed)"
    ]


def test_an_account_holds_far_more_clusters_with_the_new_flags():
    b = Budget()
    today = budget.clusters_per_account(TODAY, 501, b.records, b.changes_per_hour, b)
    new = budget.max_clusters_per_account(501, b)
    assert today == math.floor(0.8 * 21600 / budget.calls_per_hour(TODAY, 501, 300, 6))
    assert new > 50 * today


def test_orgdns_own_calls():
    assert budget.teardown_calls(450, values=1350) == 2 + 2 + 2 + 1  # tests/test_zone_gc.py's teardown
    assert budget.teardown_calls(2, values=0, delegated=False) == 1 + 1
    assert budget.deregistration_calls(300, owned=20) == 1 + 1
    assert budget.orgdns_calls_per_hour(first_registrations=10, zone_page_views=100, records=600) == 60 + 200
    # A zone page reads one page of records, not the zone: 10,000 record sets cost what 600 do.
    assert budget.orgdns_calls_per_hour(zone_page_views=100, records=10_000) == 100 * 2
    # Month end: 500 paid unused zones of 300 record sets within the default final window of an hour.
    assert budget.gc_final_window_rate(500, 3600, 300) == pytest.approx(500 * 5 / 3600)
    assert budget.orgdns_rate(Budget(account_rate=10, fleet_share=0.6)) == pytest.approx(3)


# Five real ExternalDNS v0.23.0 at once behind the counting proxy (`bench/route53_budget.py --measure 5 --seconds 180
# --change-every 30`, 2 Dec 2026): 10 zones in the account, 10 records per zone, a new Service per instance every 30 s,
# calls counted over 180 s after their start, with today's flags (interval scaled to 15 s) and the budget's (scaled:
# budget._flags(20, Budget(zones_refresh=60, min_event_sync=5))).
MEASURED_FLEET = {"today": 238, "budget": 83}


@pytest.mark.parametrize("which", ["today", "budget"])
def test_the_model_is_within_15_percent_of_five_real_externaldns(which):
    flags = Flags(interval=15) if which == "today" else budget._flags(20, Budget(zones_refresh=60, min_event_sync=5))
    assert flags.args()[:3] == (
        ["--interval=15s"]
        if which == "today"
        else ["--interval=20s", "--aws-zones-cache-duration=58s", "--txt-cache-interval=18s"]
    )
    per_hour = budget.calls_per_hour(flags, zones=10, records=10 + 2 + 6, changes_per_hour=6 * 3600 / 180)
    assert 5 * per_hour * 180 / 3600 == pytest.approx(MEASURED_FLEET[which], rel=0.15)
