"""The fault matrix as a table: fault × step → outcome, attempts, time to converge, leftovers.

    .venv/bin/python bench/faults.py [pytest -k expression]

Runs tests/operations/test_fault_matrix.py — a real worker and the sweep under a supervisor, moto, OpenBao, Redis, PostgreSQL and
a real cluster (Redis and PostgreSQL as `make test` starts them) — with work horses SIGKILLed at each step of
registration, certificate issue, deregistration and zone deletion, servers frozen, and Redis restarted empty; then
prints what each case came to, and how long after a work horse's death its job ran again.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.jsonl"
        selection = ["-k", sys.argv[1]] if len(sys.argv) > 1 else []
        subprocess.call(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/operations/test_fault_matrix.py",
                "-q",
                "-p",
                "no:cacheprovider",
                *selection,
            ],
            cwd=ROOT,
            env={**os.environ, "ORGDNS_FAULT_REPORT": str(report)},
        )
        rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    print()
    print("| fault | flow | at | outcome | attempts | converged in (s) | job ran again after (s) | leftovers |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        left = "; ".join(row["leftovers"]) or "none"
        print(
            f"| {row['fault']} | {row['flow']} | {row['at']} | {row['outcome']} | {row.get('attempts', '')} | "
            f"{row['seconds']} | {row.get('rerun_after', '')} | {left} |"
        )
    reruns = [row["rerun_after"] for row in rows if row.get("rerun_after") is not None]
    if reruns:
        print(
            f"\nwork horse killed → its job running again: p50 {statistics.median(reruns):.1f} s, "
            f"max {max(reruns):.1f} s over {len(reruns)} kills"
        )


if __name__ == "__main__":
    main()
