"""What Prometheus counts as it happens: jobs' durations, remote calls and throttled answers, by every process.

With PROMETHEUS_MULTIPROC_DIR set (for the web processes and every worker, whose jobs run in forked work horses),
prometheus_client keeps each process's counts in files there, which a scrape adds up (services.metrics_export).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from provisioning.clients.retry import CallStats

if TYPE_CHECKING:
    from collections.abc import Iterator

JOB_DURATION = Histogram(
    "orgdns_job_duration_seconds",
    "How long background jobs ran, by operation kind and how the run ended (succeeded, failed, retrying, crashed).",
    ["kind", "outcome"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900),
    registry=None,
)
REMOTE_CALLS = Counter(
    "orgdns_remote_calls",
    "Requests sent to AWS (route53, iam, sts), Vault and clusters (kubernetes), by service and operation.",
    ["service", "operation"],
    registry=None,
)
REMOTE_THROTTLES = Counter(
    "orgdns_remote_throttles",
    "Answers that told us to slow down (Throttling, PriorRequestNotComplete, HTTP 429…), by service and operation.",
    ["service", "operation"],
    registry=None,
)
COUNTED = (JOB_DURATION, REMOTE_CALLS, REMOTE_THROTTLES)
FOLDED_KINDS = ("counter", "histogram", "summary")  # prometheus_client files whose counts add up (not gauges)


class MeteredCallStats(CallStats):
    """A job's tally of remote calls that also counts them (and throttled answers) for Prometheus."""

    def count(self, service: str, operation: str | None = None) -> None:
        super().count(service, operation)
        REMOTE_CALLS.labels(service, operation or "").inc()

    def throttled(self, service: str, operation: str) -> None:
        super().throttled(service, operation)
        REMOTE_THROTTLES.labels(service, operation).inc()


@contextmanager
def timed_job(kind: str) -> Iterator[_Run]:
    """Observe the job's duration under the outcome the block sets: `with timed_job(kind) as run: run.outcome = …`."""
    run = _Run()
    started = time.monotonic()
    try:
        yield run
    finally:
        JOB_DURATION.labels(kind, run.outcome).observe(time.monotonic() - started)


class _Run:
    outcome = "crashed"
