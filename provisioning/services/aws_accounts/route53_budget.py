"""The Route53 budget of each AWS account orgdns provisions into (issue #9): what the fleet of ExternalDNS there is
modelled to spend (provisioning/rules/budget.py), what orgdns measures it spends itself (route53_usage), the account's
quotas, and re-rendering ExternalDNS when the fleet's size in an account calls for another resync interval.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q

from provisioning.models import Cluster, HostedZone, Operation
from provisioning.rules import budget
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.aws_accounts import route53_usage
from provisioning.services.clusters.externaldns import account_zones, fleet_interval
from provisioning.services.clusters.jobs import RerenderExternalDNS

UNFINISHED = [Operation.State.QUEUED, Operation.State.RUNNING, Operation.State.RETRYING]


@dataclass(frozen=True)
class AccountBudget:
    """One account's figures, as the budget page shows them."""

    account: accounts.Account
    load: budget.AccountLoad
    clusters: int  # not deregistered: each may run ExternalDNS
    zones: int  # what ExternalDNS pages through: the account's zones as orgdns knows them, the parent zone included
    records: int  # record sets per zone the model plans for
    jitter: float  # each cluster's interval is up to this fraction longer
    interval: int  # seconds: the resync interval the fleet calls for now, before each cluster's jitter
    # (shortest, longest) interval the clusters' ExternalDNS were deployed with, if any is known
    running: tuple[float, float] | None
    unknown: int  # clusters whose flags are not known (deployed before orgdns recorded them, or not deployed yet)
    stale: int | None  # ready clusters waiting to be re-rendered (None: not counted)
    measured_requests: int  # orgdns's Route53 requests in the last measured_minutes
    measured_minutes: int
    attention: list[str]  # what is above ORGDNS_BUDGET_ATTENTION of its budget or quota, in words


def account_budgets() -> list[AccountBudget]:
    return [account_budget(account) for account in accounts.configured()]


def accounts_needing_attention() -> list[AccountBudget]:
    """The accounts above ORGDNS_BUDGET_ATTENTION of a budget or quota (in two queries each: for the home page)."""
    figures = (account_budget(account, stale=False) for account in accounts.configured())
    return [account for account in figures if account.attention]


def account_budget(account: accounts.Account, stale: bool = True) -> AccountBudget:
    """The account's figures; `stale` (a query more) counts the clusters waiting to be re-rendered, else None."""
    plan = accounts.budget_of(account)
    running, unknown = running_flags(account)
    counts = (
        HostedZone.objects.live()
        .filter(aws_account__in=accounts.stored_names(account))
        .aggregate(
            live=Count("pk"), created=Count("pk", filter=~Q(zone_id="")), users=Count("pk", filter=~Q(iam_user_name=""))
        )
    )
    clusters, zones = sum(running.values()) + unknown, account_zones(counts["live"], account)
    interval = budget.resync_interval(max(1, clusters), zones, plan)
    # Flags not known are counted at the interval the fleet calls for, without jitter (so a little high).
    fleet = running + Counter({budget.cluster_flags(interval, budget=plan): unknown})
    fleet_per_hour = sum(
        count * budget.calls_per_hour(flags, zones, plan.records, plan.changes_per_hour)
        for flags, count in fleet.items()
    )
    requests, seconds = route53_usage.recent_requests(account.name, settings.ORGDNS_ROUTE53_MEASURE_MINUTES)
    load = budget.AccountLoad(
        account_rate=account.rate,
        fleet_budget=account.rate * account.fleet_share,
        orgdns_budget=account.orgdns_rate,
        fleet_rate=fleet_per_hour / 3600,
        orgdns_rate=requests / seconds,
        zones=counts["created"],
        zone_quota=account.zone_quota,
        iam_users=counts["users"],
        iam_user_quota=account.iam_user_quota,
    )
    intervals = [flags.interval for flags in running]
    return AccountBudget(
        account=account,
        load=load,
        clusters=clusters,
        zones=zones,
        records=plan.records,
        jitter=plan.jitter,
        interval=interval,
        running=(min(intervals), max(intervals)) if intervals else None,
        unknown=unknown,
        stale=len(stale_clusters(account, interval)) if stale else None,
        measured_requests=requests,
        measured_minutes=settings.ORGDNS_ROUTE53_MEASURE_MINUTES,
        attention=load.above(settings.ORGDNS_BUDGET_ATTENTION),
    )


def running_flags(account: accounts.Account) -> tuple[Counter[budget.Flags], int]:
    """(Counter of the flags the account's live clusters' ExternalDNS were deployed with, how many clusters' flags are
    not known), in one grouped query."""
    running: Counter[budget.Flags]
    running, unknown = Counter(), 0
    live = Cluster.objects.live().filter(organization__aws_account__in=accounts.stored_names(account))
    for stored, count in live.order_by().values_list("externaldns_flags").annotate(n=Count("pk")):
        if stored:
            running[budget.Flags(**stored)] += count
        else:
            unknown += count
    return running, unknown


# --- re-rendering ExternalDNS as the fleet grows or shrinks -------------------------------------------------------


@dataclass(frozen=True)
class Rerender:
    cluster_id: int
    running: budget.Flags | None  # None: not known
    wanted: budget.Flags
    cluster: Cluster | None = None  # fetched for those queued


def stale_clusters(account: accounts.Account | None = None, interval: int | None = None) -> list[Rerender]:
    """Ready clusters (of every account, or of `account`) that no job is working on whose ExternalDNS runs with flags
    the size of the fleet in its account no longer calls for (budget.needs_rerender with
    EXTERNALDNS_RERENDER_THRESHOLD): those whose flags are not known first, then those resyncing most often for what
    is wanted of them (they overspend the most). One query per account, no model instances."""
    if account is None:
        return sorted((r for a in accounts.configured() for r in stale_clusters(a)), key=_overspend)
    interval = fleet_interval(account) if interval is None else interval
    plan = accounts.budget_of(account)
    ready = (
        Cluster.objects.filter(state=Cluster.State.READY, organization__aws_account__in=accounts.stored_names(account))
        .exclude(operations__state__in=UNFINISHED)
        .order_by("pk")
        .values_list("pk", "owner_id", "externaldns_flags")
    )
    stale = []
    for pk, owner_id, stored in ready:
        running = budget.Flags(**stored) if stored else None
        wanted = budget.cluster_flags(interval, owner_id, plan)
        if budget.needs_rerender(running, wanted, settings.EXTERNALDNS_RERENDER_THRESHOLD):
            stale.append(Rerender(pk, running, wanted))
    return sorted(stale, key=_overspend)


def _overspend(rerender: Rerender) -> float:
    return rerender.running.interval / rerender.wanted.interval if rerender.running else 0


def rerender_stale(limit: int | None = None, dry_run: bool = False) -> tuple[list[Rerender], int]:
    """Queue re-renders of the first stale clusters, keeping at most `limit` (EXTERNALDNS_RERENDERS_AT_ONCE) queued
    or running at once: each restarts an ExternalDNS, which reads the account's zones and its zone's records again.
    Returns (the re-renders queued, or planned with dry_run; how many stale clusters are left for a later run)."""
    limit = settings.EXTERNALDNS_RERENDERS_AT_ONCE if limit is None else limit
    busy = Operation.objects.filter(kind=RerenderExternalDNS.name, state__in=UNFINISHED).count()
    stale = stale_clusters()
    room = max(0, limit - busy)
    clusters = Cluster.objects.select_related("organization").in_bulk([r.cluster_id for r in stale[:room]])
    chosen = []
    for rerender in stale[:room]:
        cluster = clusters[rerender.cluster_id]
        if dry_run or queue_rerender(cluster):
            chosen.append(dataclasses.replace(rerender, cluster=cluster))
    return chosen, len(stale) - len(chosen)


def queue_rerender(cluster: Cluster) -> bool:
    """Queue the re-render unless another process got there first (the cluster is no longer ready, or has a job)."""
    with transaction.atomic():
        idle = (
            Cluster.objects.select_for_update()
            .filter(pk=cluster.pk, state=Cluster.State.READY)
            .exclude(operations__state__in=UNFINISHED)
        )
        if not idle.exists():
            return False
        RerenderExternalDNS.enqueue(cluster)
        return True
