"""What the least-privilege checks cost a cluster's API: the grant check at registration (one SelfSubjectAccessReview
per request orgdns makes and per dangerous request it must not be able to make) and the drift check of the tenant's
part, with the bootstrap's token and with a cluster-admin token, against a real local cluster.

    .venv/bin/python bench/registration_checks.py [--runs 10]

Requests are counted by the fault proxy in front of the API server; times are medians of --runs, on loopback.
"""

import argparse
import ipaddress
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.cluster import ORGDNS_NAMESPACE, ClusterFarm  # noqa: E402
from devstack.processes import free_port, start_moto, stop  # noqa: E402
from provisioning.clients import externaldns  # noqa: E402
from provisioning.clients.kube import ClusterConnection, KubeCluster  # noqa: E402
from provisioning.clients.retry import RetryPolicy  # noqa: E402

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


def grant_check(kube):
    missing = [a for a in externaldns.required_access(ORGDNS_NAMESPACE) if not kube.may(a)]
    excess = [told for a, told in externaldns.DANGEROUS_ACCESS if kube.may(a)]
    return missing, excess


def measure(access, token, check, runs):
    kube = KubeCluster(
        ClusterConnection(access.url, token, access.ca_pem), retry=RetryPolicy(attempts=1), permitted_networks=LOOPBACK
    )
    seconds, requests, found = [], [], None
    try:
        for _ in range(runs):
            before, started = access.proxy.request_count, time.perf_counter()
            found = check(kube)
            seconds.append(time.perf_counter() - started)
            requests.append(access.proxy.request_count - before)
    finally:
        kube.close()
    return statistics.median(requests), statistics.median(seconds) * 1000, found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    moto, moto_url = start_moto(free_port())
    farm = ClusterFarm(moto_url)
    try:
        access = farm.acquire()
        tokens = {"bootstrap token": access.token, "cluster-admin token": access.cluster.admin_token}
        print(f"{'check':<34} {'token':<20} {'requests':>8} {'ms':>8}   found")
        for label, token in tokens.items():
            requests, ms, (missing, excess) = measure(access, token, grant_check, args.runs)
            found = f"{len(missing)} missing, {len(excess)} dangerous allowed"
            print(f"{'grants (registration)':<34} {label:<20} {requests:>8.0f} {ms:>8.1f}   {found}")
        for label, token in tokens.items():
            check = lambda kube: externaldns.setup_drift(kube, ORGDNS_NAMESPACE)  # noqa: E731
            requests, ms, drift = measure(access, token, check, args.runs)
            print(f"{'drift of the tenant part':<34} {label:<20} {requests:>8.0f} {ms:>8.1f}   {len(drift)} drifted")
        print(
            f"({len(externaldns.required_access(ORGDNS_NAMESPACE))} requests orgdns makes, "
            f"{len(externaldns.DANGEROUS_ACCESS)} dangerous ones; medians of {args.runs} runs)"
        )
    finally:
        farm.stop()
        stop(moto)


if __name__ == "__main__":
    main()
