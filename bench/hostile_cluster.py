"""A hostile cluster API against a real web process: how much its memory grows, and how long registering takes.

    .venv/bin/python bench/hostile_cluster.py

Runs tests/test_hostile_cluster.py's web-process test — `manage.py runserver` (as the demo runs it) signed in as a
member, registering through the form, three times per attack, a TLS server that streams an endless /version, declares
a 10 GB body, drips one byte every 50 ms (in the body, or in the headers), or nests JSON 400,000 levels deep — with
ORGDNS_PROBE_TIMEOUT=2; then prints, per attack, the time of the last registration, the web process's resident memory
growth since before the first attack (VmRSS) and what the hostile server had sent. Redis and PostgreSQL as `make test`
starts them.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "hostile.jsonl"
        subprocess.call(
            [
                *(sys.executable, "-m", "pytest", "tests/test_hostile_cluster.py", "-q", "-p", "no:cacheprovider"),
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


if __name__ == "__main__":
    main()
