"""Whether each ready cluster's ExternalDNS works, as its cluster API tells: read by check_externaldns (cron), kept on
the Cluster row for the pages, the API and /metrics.

A check costs one Vault read (the cluster's credentials), two or three cluster API requests (clients/externaldns.py
observe) and four reads of the tenant's part (setup_drift), without retries: a check that cannot reach the cluster says
so, and the next one tries again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from provisioning.clients import externaldns
from provisioning.clients.errors import ProviderError
from provisioning.clients.retry import RetryPolicy
from provisioning.models import Cluster
from provisioning.services.backends import Backends
from provisioning.services.credentials.vault_paths import read_connection

if TYPE_CHECKING:
    from datetime import datetime

    from django.db.models import QuerySet

Health = Cluster.Health


@dataclass(frozen=True)
class Finding:
    """What one check found: the observation, or why there is none."""

    observation: externaldns.Observation | None
    unreachable: str = ""
    drift: list[str] | None = None  # how the tenant's part of the cluster drifted; None: not read


def clusters_to_check() -> QuerySet[Cluster]:
    """Ready clusters: those whose ExternalDNS orgdns deployed and did not remove (a cluster in error shows as such)."""
    return Cluster.objects.filter(state=Cluster.State.READY).select_related("organization").order_by("pk")


def check_all(now: datetime | None = None, workers: int | None = None) -> dict[Cluster, str]:
    """Check every ready cluster, a few at a time; returns {cluster: its health after the check}."""
    clusters = list(clusters_to_check())
    with ThreadPoolExecutor(max_workers=workers or settings.ORGDNS_HEALTH_CHECK_WORKERS) as pool:
        findings = list(pool.map(observe, clusters))
    now = now or timezone.now()
    return {cluster: record(cluster, finding, now) for cluster, finding in zip(clusters, findings, strict=True)}


def check(cluster: Cluster, now: datetime | None = None) -> str:
    """Check one cluster now; returns its health."""
    return record(cluster, observe(cluster), now or timezone.now())


def observe(cluster: Cluster, backends: Backends | None = None) -> Finding:
    """Read ExternalDNS's state from the cluster (no database access: it runs in threads)."""
    backends = backends or Backends()
    try:
        connection = read_connection(backends.vault(), cluster)
        kube = backends.cluster(connection, retry=RetryPolicy(attempts=1))
        try:
            namespace = settings.EXTERNALDNS_NAMESPACE
            observation = externaldns.observe(kube, namespace, through_service=not cluster.legacy_rbac)
            try:
                drift: list[str] | None = externaldns.setup_drift(kube, namespace)
            except ProviderError:
                drift = None
            return Finding(observation, drift=drift)
        finally:
            kube.close()
    except ProviderError as exc:
        return Finding(None, unreachable=f"cannot check: {exc.message}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # one cluster's odd answer stops no other check
        return Finding(
            None, unreachable=f"cannot check: the cluster's answer was not understood ({type(exc).__name__})"
        )


def record(cluster: Cluster, finding: Finding, now: datetime) -> str:
    """Keep what the check found on the cluster's row if it is still ready (its health fields only: a job may be
    changing the rest)."""
    observation = finding.observation
    health: str
    if observation is None:
        health, problem = Health.UNKNOWN, finding.unreachable
    else:
        problem = externaldns.health_problem(observation, now.timestamp())
        health = Health.FAILING if problem else Health.OK
    fields = {
        "externaldns_health": health,
        "externaldns_problem": problem[:2000],
        "externaldns_checked_at": now,
        "externaldns_failing_since": None
        if health == Health.OK
        else (
            cluster.externaldns_failing_since if cluster.externaldns_health in (Health.FAILING, Health.UNKNOWN) else now
        ),
    }
    if finding.drift is not None:
        fields.update(setup_drift="\n".join(finding.drift), setup_checked_at=now)
    if observation is not None:
        last_sync = observation.metrics.last_sync if observation.metrics else 0
        fields.update(
            externaldns_restarts=observation.restarts,
            externaldns_last_sync_at=datetime.fromtimestamp(last_sync, UTC) if last_sync else None,
            externaldns_metrics_error=observation.metrics_error,
        )
    Cluster.objects.filter(pk=cluster.pk, state=Cluster.State.READY).update(**fields)
    for name, value in fields.items():
        setattr(cluster, name, value)
    return health


# Ready clusters whose ExternalDNS failed its last check or could not be checked.
FAILING = Q(state=Cluster.State.READY, externaldns_health__in=[Health.FAILING, Health.UNKNOWN])
