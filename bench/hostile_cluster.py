"""A hostile cluster API against a real web process: how much its memory grows, and how long registering takes.

    .venv/bin/python bench/hostile_cluster.py

Runs tests/clusters/test_hostile_cluster.py's web-process test — `manage.py runserver` (as the demo runs it) signed in as a
member, registering through the form, three times per attack, a TLS server that streams an endless /version, declares
a 10 GB body, drips one byte every 50 ms (in the body, or in the headers), or nests JSON 400,000 levels deep — with
ORGDNS_PROBE_TIMEOUT=2; then prints, per attack, the time of the last registration, the web process's resident memory
growth since before the first attack (VmRSS) and what the hostile server had sent; then how long each attack holds
one call of the cluster client with a 5 s timeout. Redis and PostgreSQL as `make test` starts them.
"""

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CALL_TIMEOUT = 5  # seconds: ORGDNS_PROBE_TIMEOUT's default


def one_call_figures():
    """Each attack against one KubeCluster call with a 5 s timeout: how long it held the call, and how it ended."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from provisioning.clients.errors import ProviderError
    from provisioning.clients.kube import ClusterConnection, KubeCluster
    from provisioning.clients.retry import RetryPolicy
    from tests.hostile_api import ATTACKS, HostileApi

    with tempfile.TemporaryDirectory() as tmp:
        api = HostileApi(Path(tmp))
        kube = KubeCluster(
            ClusterConnection(api.url, "t", api.ca_pem),
            retry=RetryPolicy(attempts=1),
            timeout=CALL_TIMEOUT,
            permitted_networks=[ipaddress.ip_network("127.0.0.0/8")],
        )
        print(f"\n| attack | one call ({CALL_TIMEOUT} s timeout) held for (s) | outcome |")
        print("|---|---|---|")
        for attack in ATTACKS:
            api.serve(attack)
            started = time.monotonic()
            try:
                kube.version()
                outcome = "answered"
            except ProviderError as exc:
                outcome = f"{exc.code or 'refused'} ({'permanent' if exc.permanent else 'transient'})"
            print(f"| {attack} | {time.monotonic() - started:.2f} | {outcome} |")
        kube.close()
        api.stop()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "hostile.jsonl"
        subprocess.call(
            [
                *(
                    sys.executable,
                    "-m",
                    "pytest",
                    "tests/clusters/test_hostile_cluster.py",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                ),
                *("-p", "no:playwright", "-k", "memory_stays_bounded"),
            ],
            cwd=ROOT,
            env={**os.environ, "ORGDNS_HOSTILE_REPORT": str(report)},
        )
        rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    print()
    print(
        "| attack (3 registrations each) | form answered in (s) | web process RSS growth (MB) | bytes the server sent (last registration) |"
    )
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['attack']} | {row['seconds']} | {row['rss_growth_mb']} | {row['sent']} |")
    print("\nprobe deadline: 2 s (ORGDNS_PROBE_TIMEOUT); answer cap: 1 MiB (ORGDNS_CLUSTER_MAX_RESPONSE_BYTES)")
    one_call_figures()


if __name__ == "__main__":
    main()
