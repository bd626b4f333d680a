"""The Route53 request budget of one AWS account: what every tenant's ExternalDNS and orgdns itself spend, and the
ExternalDNS flags that keep the fleet within its share. Pure functions: no Django, no I/O.

Route53 throttles per account (a bucket refilled at 10 requests/s, burst 50: docs/route53-budget.md), shared by orgdns's workers,
every tenant's ExternalDNS and the console. ExternalDNS v0.23.0's cost, counted at moto (bench/externaldns_calls.py):
- a sync without caches reads the account's zones twice (its domain filter and its records: 2·⌈Z/100⌉
  ListHostedZones) and the zone's records (⌈R/300⌉ ListResourceRecordSets); a sync that changes something makes one
  ChangeResourceRecordSets per zone and lists the zones once more (⌈Z/100⌉) to apply it;
- with --aws-zones-cache-duration and --txt-cache-interval a sync reads nothing while the caches are fresh; the
  first sync after a cache expired reads ⌈Z/100⌉ resp. ⌈R/300⌉ pages, and so does a start; a sync that changes
  something makes one ChangeResourceRecordSets (the records cache is updated in place);
- --events schedules a sync 5 s after a change, but not sooner than --min-event-sync-interval after the last sync
  (controller.ScheduleRunOnce), so a change reaches Route53 within max(5 s, min-event-sync-interval) plus a sync.

Z: hosted zones in the account; R: record sets in the organization's zone (SOA, NS and ExternalDNS's TXT markers
included). Times are seconds, rates per hour unless the name says otherwise. The model errs on the side of cost:
an event sync is counted on top of the resyncs although it postpones the next one.
"""

import hashlib
import math
from dataclasses import dataclass

ZONES_PER_PAGE = 100  # ListHostedZones
RECORDS_PER_PAGE = 300  # ListResourceRecordSets
EVENT_DELAY = 5  # seconds from a change to the sync it schedules (ExternalDNS controller.ScheduleRunOnce)
SYNC_TIME = 1  # seconds a sync of a small zone takes, reading nothing (measured: the change is in Route53 < 6 s)

# orgdns's own Route53 calls (provisioning/clients/aws.py, provisioning/services/*):
# the first registration of an organization (its job, with a parent zone): ListHostedZonesByName, CreateHostedZone,
# ChangeTagsForResource, ListResourceRecordSets of the parent twice (the check for foreign records, the delegation's),
# ChangeResourceRecordSets (the delegation); tests/clusters/test_register_flow.py counts them. Creating the organization reads
# the parent once more. Later clusters of the organization make none.
FIRST_REGISTRATION_CALLS = 6
MAX_CHANGE_RECORDS = 1000  # values per ChangeResourceRecordSets


# A page of a zone's records: the page, and the ownership markers it did not read with it (bench/zone_page.py).
ZONE_PAGE_CALLS = 2


def zone_pages(zones):
    return max(1, math.ceil(zones / ZONES_PER_PAGE))


def record_pages(records):
    return max(1, math.ceil(records / RECORDS_PER_PAGE))


def _duration(seconds):
    """ExternalDNS's duration syntax, whole seconds: 90 -> '1m30s'."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


@dataclass(frozen=True)
class Flags:
    """The ExternalDNS flags that decide its Route53 cost. 0 means no cache."""

    interval: float
    zones_cache: float = 0
    txt_cache: float = 0
    events: bool = False
    min_event_sync: float = 5  # ExternalDNS's default

    def args(self):
        args = [f"--interval={_duration(self.interval)}"]
        if self.zones_cache:
            args.append(f"--aws-zones-cache-duration={_duration(self.zones_cache)}")
        if self.txt_cache:
            args.append(f"--txt-cache-interval={_duration(self.txt_cache)}")
        if self.events:
            args += ["--events", f"--min-event-sync-interval={_duration(self.min_event_sync)}"]
        return args


TODAY = Flags(interval=60)  # orgdns's flags before the budget (issue #9)


def sync_calls(flags, zones, records, changed=False):
    """Route53 calls of one sync in steady state (caches fresh, if any): idle, or applying a change."""
    reads = 0
    if not flags.zones_cache:
        reads += 2 * zone_pages(zones) + (zone_pages(zones) if changed else 0)
    if not flags.txt_cache:
        reads += record_pages(records)
    return reads + (1 if changed else 0)


def start_calls(flags, zones, records):
    """Calls of the first sync after ExternalDNS starts (every cache empty)."""
    return (zone_pages(zones) if flags.zones_cache else 2 * zone_pages(zones)) + record_pages(records)


def _refreshes_per_hour(cache, flags, syncs_per_hour):
    """How often a cache of this duration is read again: at the first sync after it expired. Its clock starts when
    the read ends, a little after the sync started, so a cache of exactly k intervals is read every k+1 syncs."""
    if not flags.events:
        return 3600 / (flags.interval * (math.floor(cache / flags.interval) + 1))
    return min(syncs_per_hour, 3600 / cache)


def busy_syncs(changes_per_hour, syncs_per_hour):
    """Expected syncs per hour with at least one change to apply, for changes arriving at random (Poisson)."""
    if changes_per_hour <= 0 or syncs_per_hour <= 0:
        return 0.0
    return syncs_per_hour * (1 - math.exp(-changes_per_hour / syncs_per_hour))


def syncs_per_hour(flags, changes_per_hour=0.0):
    """(syncs, syncs that apply a change) per hour."""
    resyncs = 3600 / flags.interval
    if flags.events:
        events = busy_syncs(changes_per_hour, 3600 / max(flags.min_event_sync, EVENT_DELAY))
        return resyncs + events, events
    return resyncs, busy_syncs(changes_per_hour, resyncs)


def calls_per_hour(flags, zones, records, changes_per_hour=0.0):
    """Route53 calls per hour of one ExternalDNS with these flags, in steady state."""
    syncs, changing = syncs_per_hour(flags, changes_per_hour)
    zp, rp = zone_pages(zones), record_pages(records)
    calls = changing  # one ChangeResourceRecordSets per sync that changes something
    if flags.zones_cache:
        calls += zp * _refreshes_per_hour(flags.zones_cache, flags, syncs)
    else:
        calls += zp * (2 * syncs + changing)
    if flags.txt_cache:
        calls += rp * _refreshes_per_hour(flags.txt_cache, flags, syncs)
    else:
        calls += rp * syncs
    return calls


def change_latency(flags):
    """(typical, worst) seconds from a change in the cluster until ExternalDNS has written it to Route53."""
    if flags.events:
        worst = max(EVENT_DELAY, flags.min_event_sync) + SYNC_TIME
        return EVENT_DELAY + SYNC_TIME, worst
    return flags.interval / 2 + SYNC_TIME, flags.interval + SYNC_TIME


def fleet_calls_per_second(clusters, flags, zones, records, changes_per_hour=0.0):
    """Route53 calls per second of `clusters` ExternalDNS instances in one account (each with its own zone size)."""
    return clusters * calls_per_hour(flags, zones, records, changes_per_hour) / 3600


# --- the flags, chosen from the budget --------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    account_rate: float = 10.0  # requests/s the account's bucket refills
    fleet_share: float = 0.6  # of it, for every tenant's ExternalDNS together
    records: int = 300  # record sets per zone to plan for
    changes_per_hour: float = 6.0  # changes per cluster to plan for
    min_interval: float = 60  # the resync interval is never shorter (today's)
    max_interval: float = 3600  # nor longer: how long a record changed by hand in Route53 may stay wrong
    # The zones cache is read again about this often: ExternalDNS only looks for its own zone there, whose id does
    # not change while a cluster uses it (the GC deletes unused zones only).
    zones_refresh: float = 6 * 3600
    min_event_sync: float = 45  # a change reaches Route53 within about this plus a sync
    jitter: float = 0.1  # each cluster's interval is up to this fraction longer, from its owner id

    @property
    def fleet_per_hour(self):
        return self.account_rate * self.fleet_share * 3600


def jitter_fraction(owner_id):
    """A fraction in [0, 1), the same for the same owner id on every host."""
    digest = hashlib.sha256(owner_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _flags(interval, budget, jitter=0.0):
    interval = math.ceil(interval * (1 + budget.jitter * jitter))
    # Each cache expires a little before the sync that should read it again (the cache's clock starts when the read
    # ends, the interval's when the sync starts): the records every resync, the zones every k-th resync.
    txt_cache = interval - max(1, min(30, interval // 10))
    k = max(1, math.ceil(budget.zones_refresh / interval))
    zones_cache = k * interval - max(1, min(30, interval // 10))
    return Flags(
        interval=interval,
        zones_cache=zones_cache,
        txt_cache=txt_cache,
        events=True,
        min_event_sync=budget.min_event_sync,
    )


def resync_interval(clusters, zones, budget):
    """The shortest resync interval (seconds, within the budget's bounds) at which `clusters` ExternalDNS instances
    in one account stay within the fleet's share; max_interval when even that does not fit."""

    def cost(interval):
        return clusters * calls_per_hour(_flags(interval, budget), zones, budget.records, budget.changes_per_hour)

    if cost(budget.min_interval) <= budget.fleet_per_hour:
        return budget.min_interval
    low, high = budget.min_interval, budget.max_interval
    if cost(high) > budget.fleet_per_hour:
        return high
    while high - low > 1:  # cost falls as the interval grows
        middle = (low + high) / 2
        low, high = (middle, high) if cost(middle) > budget.fleet_per_hour else (low, middle)
    return math.ceil(high)


def cluster_flags(interval, owner_id=None, budget=Budget()):
    """The flags of one cluster's ExternalDNS at the fleet's resync interval, lengthened by the jitter of its owner id
    (none without one)."""
    return _flags(interval, budget, jitter_fraction(owner_id) if owner_id else 0.0)


def externaldns_flags(clusters, zones, owner_id, budget=Budget()):
    """The flags of one cluster's ExternalDNS, for a fleet of `clusters` in an account of `zones` hosted zones."""
    return cluster_flags(resync_interval(max(1, clusters), zones, budget), owner_id, budget)


def needs_rerender(running, wanted, threshold):
    """Whether an ExternalDNS running with the flags `running` (None: not known) should be deployed again with
    `wanted`: its interval is off by more than `threshold` (a fraction of the wanted one), or its events differ.
    The threshold keeps a fleet that grows one cluster at a time from restarting every ExternalDNS each time."""
    if running is None:
        return True
    if (running.events, running.min_event_sync) != (wanted.events, wanted.min_event_sync):
        return True
    return abs(running.interval - wanted.interval) > threshold * wanted.interval


def clusters_per_account(flags, zones, records, changes_per_hour, budget=Budget(), utilisation=0.8):
    """How many ExternalDNS instances with these flags one account holds at `utilisation` of the fleet's share."""
    return math.floor(utilisation * budget.fleet_per_hour / calls_per_hour(flags, zones, records, changes_per_hour))


def max_clusters_per_account(zones, budget=Budget(), utilisation=0.8):
    """The most clusters one account holds at `utilisation` of the fleet's share with the budget's flags
    (at the longest resync interval)."""
    flags = _flags(budget.max_interval, budget, jitter=0.0)
    return clusters_per_account(flags, zones, budget.records, budget.changes_per_hour, budget, utilisation)


def placement_headroom(zones, zone_quota, iam_users, iam_user_quota, clusters, cluster_capacity):
    """What an account has left of its tightest limit, as a fraction (negative: its clusters are over what its Route53
    rate holds); None when it has no room for another organization's zone or IAM user (the quotas are hard, the rate
    is not: ExternalDNS resyncs less often)."""
    if zones >= zone_quota or iam_users >= iam_user_quota:
        return None
    return 1 - max(zones / zone_quota, iam_users / iam_user_quota, _fraction(clusters, cluster_capacity))


def most_headroom(headrooms):
    """The index of the account to place a new organization in: the most headroom, the first of equals; None when no
    account has room (every headroom is None)."""
    candidates = [(h, -i) for i, h in enumerate(headrooms) if h is not None]
    return -max(candidates)[1] if candidates else None


# --- orgdns's own share ------------------------------------------------------------------------------------------


def teardown_calls(records, values=None, delegated=True):
    """Route53 calls to delete a zone of `records` record sets (`values` record values, default one each)."""
    values = records if values is None else values
    delegation = 2 if delegated else 0  # the parent's NS record: list it, delete it
    changes = math.ceil(values / MAX_CHANGE_RECORDS) if values else 0
    return delegation + record_pages(records) + changes + 1  # + DeleteHostedZone


def deregistration_calls(records, owned):
    """Route53 calls to remove one cluster's records from its zone."""
    return record_pages(records) + (math.ceil(owned / MAX_CHANGE_RECORDS) if owned else 0)


def orgdns_calls_per_hour(
    first_registrations=0.0, deregistrations=0.0, teardowns=0.0, zone_page_views=0.0, records=300, owned=20
):
    """orgdns's own Route53 calls per hour for this activity (per hour each)."""
    return (
        first_registrations * FIRST_REGISTRATION_CALLS
        + deregistrations * deregistration_calls(records, owned)
        + teardowns * teardown_calls(records)
        + zone_page_views * ZONE_PAGE_CALLS
    )


def gc_final_window_rate(zones_to_delete, window, records=300):
    """Calls per second the month-end GC needs to delete `zones_to_delete` zones within `window` seconds."""
    return zones_to_delete * teardown_calls(records) / window


def orgdns_rate(budget=Budget(), other_share=0.1):
    """orgdns's own rate: what the fleet and other callers (the console, scripts) leave of the account's."""
    return budget.account_rate * max(0.0, 1 - budget.fleet_share - other_share)


# --- an account's use of its budget and quotas -------------------------------------------------------------------


@dataclass(frozen=True)
class AccountLoad:
    """What one account's callers spend of its Route53 rate, and how full its quotas are. Rates in calls/s."""

    account_rate: float  # the account's bucket
    fleet_budget: float  # of it, every tenant's ExternalDNS together
    orgdns_budget: float  # of it, orgdns's own workers and pages
    fleet_rate: float  # the fleet's, modelled
    orgdns_rate: float  # orgdns's, measured
    zones: int
    zone_quota: int
    iam_users: int
    iam_user_quota: int

    @property
    def fleet_used(self):
        return _fraction(self.fleet_rate, self.fleet_budget)

    @property
    def orgdns_used(self):
        return _fraction(self.orgdns_rate, self.orgdns_budget)

    @property
    def total_rate(self):
        return self.fleet_rate + self.orgdns_rate

    @property
    def total_used(self):
        return _fraction(self.total_rate, self.account_rate)

    @property
    def headroom(self):
        """Calls/s left in the account's bucket (negative: more is asked of it than it refills)."""
        return self.account_rate - self.total_rate

    @property
    def zones_used(self):
        return _fraction(self.zones, self.zone_quota)

    @property
    def iam_users_used(self):
        return _fraction(self.iam_users, self.iam_user_quota)

    def above(self, threshold):
        """What is above `threshold` (a fraction) of its budget or quota, in words; empty when nothing is."""
        parts = [
            (
                self.fleet_used,
                f"the ExternalDNS fleet's estimated {self.fleet_rate:.2f} calls/s of its {self.fleet_budget:.2f}",
            ),
            (self.orgdns_used, f"orgdns's measured {self.orgdns_rate:.2f} calls/s of its {self.orgdns_budget:.2f}"),
            (self.total_used, f"{self.total_rate:.2f} calls/s of the account's {self.account_rate:.2f}"),
            (self.zones_used, f"{self.zones} hosted zones of the quota of {self.zone_quota}"),
            (self.iam_users_used, f"{self.iam_users} IAM users of the cap of {self.iam_user_quota}"),
        ]
        return [
            f"{what} ({used:.0%})" if math.isfinite(used) else f"{what} (none allowed)"
            for used, what in parts
            if used > threshold
        ]


def _fraction(used, available):
    return used / available if available > 0 else float("inf") if used > 0 else 0.0
