"""The Route53 budget of 1 to 10,000 clusters spread over 1..N AWS accounts, from the model (provisioning/rules/budget.py):
the ExternalDNS fleet's calls per second per account with today's flags (--interval=1m, no caches, no events) and
with the flags orgdns now chooses, the clusters one account holds at <= 80 % of the fleet's share, and how long a
change takes to reach Route53.

    .venv/bin/python bench/route53_budget.py [--accounts 1 2 5 10] [--clusters-per-org 1] [--records 300]
        [--changes-per-hour 6] [--account-rate 10] [--fleet-share 0.6]

Each organization has one zone; an account holds at most 500 zones by default (Route53's quota), which the table
ignores (it marks the rows that exceed it). The placement section then places organizations one at a time over 1..N
accounts with orgdns's own rule (budget.placement_headroom, budget.most_headroom: quotas and the account's rate) until
no account holds another within 80 % of its fleet share, and prints the capacity per number of accounts; then raises
one account's zone quota and places more, counting the organizations that moved (orgdns stores a placement once).

    .venv/bin/python bench/route53_budget.py --measure 5 [--seconds 180] [--change-every 30]

also runs that many real ExternalDNS v0.23.0 processes (each with its own zone and owner id, watching one local
cluster, with orgdns's args) behind the counting proxy in front of moto, once with today's flags and once with the
budget's, both with their times scaled down (seconds instead of minutes), each instance getting a new Service every
--change-every seconds, and compares the Route53 calls counted in --seconds, after the start, with the model's.
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provisioning.rules import budget  # noqa: E402

CLUSTERS = [1, 10, 100, 300, 1000, 3000, 10_000]
ZONE_QUOTA = 500


def row(clusters, accounts, clusters_per_org, b):
    per_account = math.ceil(clusters / accounts)
    zones = math.ceil(per_account / clusters_per_org)
    today = budget.fleet_calls_per_second(per_account, budget.TODAY, zones, b.records, b.changes_per_hour)
    flags = budget.externaldns_flags(per_account, zones, "bench", b)
    new = budget.fleet_calls_per_second(per_account, flags, zones, b.records, b.changes_per_hour)
    return per_account, zones, today, new, flags


class SimulatedAccount:
    def __init__(self, b, zone_quota=ZONE_QUOTA, iam_user_quota=5000):
        self.b, self.zone_quota, self.iam_user_quota = b, zone_quota, iam_user_quota
        self.zones = self.clusters = 0

    def capacity(self):
        return budget.max_clusters_per_account(self.zones + 1, self.b)

    def headroom(self):
        return budget.placement_headroom(
            self.zones, self.zone_quota, self.zones, self.iam_user_quota, self.clusters, self.capacity()
        )

    def holds(self, clusters):
        return self.zones < self.zone_quota and self.clusters + clusters <= self.capacity()


def place_until_full(accounts, clusters_per_org, placements, limit=1_000_000):
    """Place organizations (each a zone, an IAM user and clusters_per_org clusters) with orgdns's rule until the account
    chosen cannot hold the next one; returns how many were placed."""
    placed = 0
    while placed < limit:
        best = budget.most_headroom([a.headroom() for a in accounts])
        if best is None or not accounts[best].holds(clusters_per_org):
            return placed
        accounts[best].zones += 1
        accounts[best].clusters += clusters_per_org
        placements.append(best)
        placed += 1
    return placed


def placement(counts, clusters_per_org, b):
    print(
        f"Placement over accounts, {clusters_per_org} cluster(s) per organization, each account {ZONE_QUOTA} zones and "
        f"{b.account_rate:g} req/s (orgdns's rule, until no account holds another organization within 80 % of its "
        "fleet share or its zone quota):"
    )
    print(
        f"{'accounts':>8} {'orgs':>7} {'clusters':>9} {'per account':>11} {'min..max clusters':>18} "
        f"{'% share':>8} (the busiest account's fleet at --interval={budget._duration(b.max_interval)})"
    )
    first = None
    for n in counts:
        accounts, placements = [SimulatedAccount(b) for _ in range(n)], []
        orgs = place_until_full(accounts, clusters_per_org, placements)
        clusters = orgs * clusters_per_org
        first = first or clusters / n
        longest = budget.cluster_flags(b.max_interval, budget=b)
        worst = max(
            budget.fleet_calls_per_second(a.clusters, longest, a.zones, b.records, b.changes_per_hour) for a in accounts
        )
        spread = f"{min(a.clusters for a in accounts)}..{max(a.clusters for a in accounts)}"
        print(
            f"{n:>8} {orgs:>7} {clusters:>9} {clusters / n:>11.0f} {spread:>18} "
            f"{100 * worst / (b.account_rate * b.fleet_share):>7.0f}%   ({clusters / n / first:.2f}× one account's, per account)"
        )
    n = max(counts)
    accounts, placements = [SimulatedAccount(b) for _ in range(n)], []
    place_until_full(accounts, clusters_per_org, placements, limit=n * 100)
    before = list(placements)
    raised = accounts[-1]  # AWS raised its quotas and rate: it has the most headroom now
    raised.zone_quota, raised.b = (
        2 * raised.zone_quota,
        budget.Budget(**{**b.__dict__, "account_rate": 2 * b.account_rate}),
    )
    more = place_until_full(accounts, clusters_per_org, placements, limit=100)
    moved = sum(1 for i, account in enumerate(before) if placements[i] != account)
    went = sum(1 for account in placements[len(before) :] if account == n - 1)
    print(
        f"  {n} accounts, {len(before)} organizations placed; then account {n}'s zone quota and rate doubled and {more} "
        f"more placed: {went} of them went to account {n}; organizations moved: {moved}"
    )


def measure(instances, seconds, change_every, records=10):
    import boto3

    from bench.externaldns_calls import fill_zone
    from devstack.awsproxy import CountingProxy
    from devstack.cluster import ClusterFarm, binaries
    from devstack.processes import free_port, start_moto, stop
    from provisioning.clients import externaldns

    scaled = budget.Budget(zones_refresh=60, min_event_sync=5)
    configurations = [
        ("today's flags, --interval=15s", budget.Flags(interval=15)),
        ("the budget's flags, scaled", budget._flags(20, scaled)),
    ]
    moto, moto_url = start_moto(free_port())
    proxy = CountingProxy(moto_url)
    farm = ClusterFarm(proxy.url)
    workdir = Path(tempfile.mkdtemp(prefix="orgdns-budget-"))
    route53 = boto3.client(
        "route53", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    zones_in_account = instances * len(configurations)
    try:
        access = farm.acquire()
        kubeconfig = access.cluster.write_kubeconfig(workdir / "kubeconfig", access.token)
        env = {
            "AWS_ENDPOINT_URL": proxy.url,
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "PATH": os.environ.get("PATH", ""),
        }
        print(
            f"{instances} real ExternalDNS, {zones_in_account} zones in the account, {records} records per zone, a change "
            f"per instance every {change_every} s, calls counted over {seconds} s after the start:"
        )
        for c, (label, flags) in enumerate(configurations):
            processes, names = [], []
            for i in range(instances):
                name = f"c{c}o{i}.fleet.test"
                zone_id = route53.create_hosted_zone(Name=name, CallerReference=f"fleet-{c}-{i}-{time.time()}")[
                    "HostedZone"
                ]["Id"].split("/")[-1]
                fill_zone(route53, zone_id, name, records)
                config = externaldns.ExternalDNSConfig(
                    namespace="external-dns",
                    image="",
                    zone_name=name,
                    zone_id=zone_id,
                    owner_id=f"fleet-{c}-{i}",
                    policy="sync",
                    region="us-east-1",
                    flags=flags,
                )
                args = [*config.args(), f"--kubeconfig={kubeconfig}", f"--metrics-address=127.0.0.1:{free_port()}"]
                log = open(workdir / f"external-dns-{c}-{i}.log", "wb")
                processes.append(
                    subprocess.Popen([binaries()["external-dns"], *args], env=env, stdout=log, stderr=subprocess.STDOUT)
                )
                names.append(name)
            time.sleep(10)  # their start syncs
            start, began, changes = proxy.snapshot(), time.monotonic(), 0
            while (elapsed := time.monotonic() - began) < seconds:
                due = int(elapsed / change_every * instances)  # the instances' changes, staggered
                while changes < min(due, int(seconds / change_every) * instances):
                    i, j = changes % instances, changes // instances
                    access.cluster.create_load_balancer_service(
                        f"c{c}-{i}-{j}", f"svc{j}.{names[i]}", f"203.0.113.{j % 250 + 1}"
                    )
                    changes += 1
                time.sleep(0.2)
            counted = proxy.snapshot() - start
            for process in processes:
                stop(process)
            per_hour = budget.calls_per_hour(
                flags,
                zones_in_account,
                records + 2 + changes / instances,
                changes_per_hour=changes / instances * 3600 / seconds,
            )
            model = instances * per_hour * seconds / 3600
            detail = ", ".join(f"{op} {n}" for op, n in sorted(counted.items()))
            print(
                f"  {label} ({' '.join(flags.args())}): measured {sum(counted.values())} calls ({detail}), "
                f"model {model:.0f}"
            )
    finally:
        farm.stop()
        proxy.stop()
        stop(moto)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--clusters-per-org", type=int, default=1)
    parser.add_argument("--placement-clusters-per-org", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--records", type=int, default=300, help="record sets per zone")
    parser.add_argument("--changes-per-hour", type=float, default=6, help="per cluster")
    parser.add_argument("--account-rate", type=float, default=10)
    parser.add_argument("--fleet-share", type=float, default=0.6)
    parser.add_argument("--measure", type=int, default=0, help="real ExternalDNS instances to measure (0: none)")
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--change-every", type=int, default=30)
    args = parser.parse_args()
    b = budget.Budget(
        account_rate=args.account_rate,
        fleet_share=args.fleet_share,
        records=args.records,
        changes_per_hour=args.changes_per_hour,
    )
    share = b.account_rate * b.fleet_share

    print(
        f"Account: {b.account_rate:g} req/s, the ExternalDNS fleet's share {b.fleet_share:g} = {share:g} req/s; "
        f"{b.records} record sets per zone, {b.changes_per_hour:g} changes per cluster and hour, "
        f"{args.clusters_per_org} cluster(s) per organization (zone)."
    )
    print()
    print(
        f"{'clusters':>8} {'accounts':>8} {'per acct':>8} {'today req/s':>12} {'new req/s':>10} {'new % share':>11} "
        f"{'--interval':>10}"
    )
    for clusters in CLUSTERS:
        for accounts in args.accounts:
            if accounts > clusters:
                continue
            per_account, zones, today, new, flags = row(clusters, accounts, args.clusters_per_org, b)
            mark = ("  over the share" if new > share else "") + ("  over the zone quota" if zones > ZONE_QUOTA else "")
            print(
                f"{clusters:>8} {accounts:>8} {per_account:>8} {today:>12.2f} {new:>10.2f} {100 * new / share:>10.0f}% "
                f"{flags.args()[0].split('=')[1]:>10}{mark}"
            )
    print()

    print("Clusters one account holds at <= 80 % of the fleet's share:")
    for zones in (1, 100, 500):
        today = budget.clusters_per_account(budget.TODAY, zones, b.records, b.changes_per_hour, b)
        new = budget.max_clusters_per_account(zones, b)
        print(
            f"  {zones:>3} zones in the account: today's flags {today:>5}, the new flags {new:>6} "
            f"(at --interval={budget._duration(b.max_interval)})"
        )
    for records in (10, 300, 3000):
        today = budget.clusters_per_account(budget.TODAY, 500, records, b.changes_per_hour, b)
        nb = budget.Budget(**{**b.__dict__, "records": records})
        print(
            f"  {records:>5} record sets per zone (500 zones): today's flags {today:>5}, the new flags "
            f"{budget.max_clusters_per_account(500, nb):>6}"
        )
    print()

    for clusters_per_org in args.placement_clusters_per_org:
        placement(args.accounts, clusters_per_org, b)
        print()

    print("Time for a change in a cluster to reach Route53 (typical, worst):")
    today = budget.change_latency(budget.TODAY)
    print(f"  today's flags (--interval=1m, no events): {today[0]:.0f} s, {today[1]:.0f} s")
    for clusters in (1, 1000):
        flags = budget.externaldns_flags(clusters, min(clusters, 500), "bench", b)
        new = budget.change_latency(flags)
        print(
            f"  new flags, {clusters} clusters in the account ({' '.join(flags.args())}): {new[0]:.0f} s, {new[1]:.0f} s;"
            f" a record changed by hand in Route53 is put back at the next resync, within {flags.interval:.0f} s"
        )
    if args.measure:
        print()
        measure(args.measure, args.seconds, args.change_every)


if __name__ == "__main__":
    main()
