"""The rule that says whether ExternalDNS is healthy, from what was observed in its cluster."""

import pytest

from provisioning.clients import externaldns
from provisioning.clients.externaldns import Observation, SyncMetrics, health_problem

NOW = 1_800_000_000.0  # a fixed Unix time for the rule's own tests


RUNNING = Observation(deployed=True, available=True, running_since=NOW - 600, interval=60)


@pytest.mark.parametrize(
    "observation, expected",
    [
        (RUNNING, ""),
        (Observation(deployed=False), "ExternalDNS is not deployed: its Deployment is missing from the cluster"),
        (Observation(deployed=True, replicas=0), "its Deployment is scaled to 0 replicas"),
        (
            Observation(deployed=True, problem="pod x; CrashLoopBackOff: back-off 40s"),
            "pod x; CrashLoopBackOff: back-off 40s",
        ),
        (Observation(deployed=True), "no ExternalDNS pod is available"),
        (Observation(deployed=True, available=True, interval=60, metrics=SyncMetrics(NOW - 40, 0, 0)), ""),
        (
            Observation(deployed=True, available=True, interval=60, metrics=SyncMetrics(NOW - 200, 3, 3)),
            "its last 3 syncs with Route53 failed (last success 3 min ago)",
        ),
        (
            Observation(deployed=True, available=True, interval=60, metrics=SyncMetrics(0, 2, 2)),
            "its last 2 syncs with Route53 failed (none succeeded since it started)",
        ),
        (
            Observation(deployed=True, available=True, interval=60, metrics=SyncMetrics(NOW - 721, 0, 0)),
            "no successful sync for 12 min (it syncs every 60 s)",
        ),
        (Observation(deployed=True, available=True, interval=3600, metrics=SyncMetrics(NOW - 3700, 0, 0)), ""),
        (
            Observation(
                deployed=True, available=True, running_since=NOW - 900, interval=60, metrics=SyncMetrics(0, 0, 0)
            ),
            "no successful sync for 15 min (it syncs every 60 s)",
        ),
    ],
)
def test_the_health_rule(observation, expected):
    assert health_problem(observation, NOW) == expected


@pytest.mark.parametrize(
    "args, seconds", [([], 60), (["--interval=1h"], 3600), (["--x", "--interval=1m30s"], 90), (["--interval=500ms"], 1)]
)
def test_the_interval_is_read_from_the_deployments_args(args, seconds):
    assert externaldns._interval(args) == seconds
