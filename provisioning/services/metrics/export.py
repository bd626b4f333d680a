"""What a /metrics scrape answers, and who may ask.

Two kinds of figures, so that they are right whatever process made them:
- counted as things happen (services.metrics): with PROMETHEUS_MULTIPROC_DIR, every process's files are added up;
  the files of processes that have ended are folded into one archive per kind at each scrape, so that a worker that
  forks a work horse per job does not leave a file per job behind. Without it, a scrape sees this process's counts.
- read from the database at scrape time (operations, clusters and zones by state, the zone GC's decision, access key
  ages, certificate expiry): gauges that every process agrees on.
"""

from __future__ import annotations

import fcntl
import glob
import hmac
import ipaddress
import os
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

from provisioning import operation_kinds
from provisioning.models import Certificate, Cluster, HostedZone, Operation
from provisioning.rules import billing
from provisioning.services.metrics.counters import COUNTED, FOLDED_KINDS
from provisioning.services.zones import gc as zone_gc

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from typing import Any

    from django.db.models import QuerySet

    from provisioning.services.zones.gc import PlannedZone

# --- who may scrape -------------------------------------------------------------------------------------------------


def scrape_allowed(authorization: str, remote_addr: str) -> bool:
    """With ORGDNS_METRICS_TOKEN as bearer token, or from one of ORGDNS_METRICS_NETWORKS; nobody when neither is set."""
    token = settings.ORGDNS_METRICS_TOKEN
    scheme, _, credentials = authorization.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.ORGDNS_METRICS_NETWORKS)


# --- the scrape -----------------------------------------------------------------------------------------------------


def exposition(accept: str = "") -> tuple[bytes, str]:
    """(body, content type) of a scrape, in the format the scraper's Accept header asks for: every process's counts and
    the database's gauges."""
    encode, content_type = choose_encoder(accept)
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        for metric in COUNTED:
            registry.register(metric)
        return encode(registry), content_type
    with _locked(directory):
        fold_ended_processes(directory)
        MultiProcessCollector(registry, path=directory)
        return encode(registry), content_type


@contextmanager
def _locked(directory: str) -> Iterator[None]:
    """One scrape (or fold) at a time per directory, so none reads a file while another folds it away."""
    with open(os.path.join(directory, "orgdns-scrape.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fold_ended_processes(directory: str) -> int:
    """Add the counts of processes that have ended into <kind>_archive.db and remove their files. Returns how many
    files were folded. The caller holds the directory's lock."""
    folded = 0
    for kind in FOLDED_KINDS:
        ended = [path for path in glob.glob(os.path.join(directory, f"{kind}_*.db")) if _ended(path)]
        if not ended:
            continue
        archive = os.path.join(directory, f"{kind}_archive.db")
        totals: dict[str, float] = {}
        for path in ([archive] if os.path.exists(archive) else []) + ended:
            for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(path):
                totals[key] = totals.get(key, 0.0) + value
        staged = archive + ".new"  # not *.db: a scrape must not read it half written
        if os.path.exists(staged):
            os.unlink(staged)
        merged = MmapedDict(staged)
        for key, value in totals.items():
            merged.write_value(key, value, 0.0)
        merged.close()
        os.replace(staged, archive)
        for path in ended:
            os.unlink(path)
        folded += len(ended)
    return folded


def _ended(path: str) -> bool:
    """Whether the process that wrote path (…_<pid>.db) has ended."""
    pid = os.path.basename(path)[: -len(".db")].rpartition("_")[2]
    if not pid.isdigit():
        return False  # the archive
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class DatabaseCollector:
    """Gauges read from the database at each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = timezone.now()
        yield self._operations()
        yield self._clusters()
        yield self._zones(now)
        yield self._access_key_ages(now)
        yield self._certificate_expiry()
        yield from self._externaldns()

    def _operations(self) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "orgdns_operations", "Operations (background jobs) by kind and state.", labels=["kind", "state"]
        )
        counts = _counts(Operation.objects.all(), "kind", "state")
        for kind in operation_kinds.values():
            for state in Operation.State.values:
                gauge.add_metric([kind, state], counts.get((kind, state), 0))
        return gauge

    def _clusters(self) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily("orgdns_clusters", "Clusters by state.", labels=["state"])
        counts = _counts(Cluster.objects.all(), "state")
        for state in Cluster.State.values:
            gauge.add_metric([state], counts.get((state,), 0))
        return gauge

    def _zones(self, now: datetime) -> GaugeMetricFamily:
        """Zones by state and by what the zone GC decides for each (none for zones it does not consider)."""
        gauge = GaugeMetricFamily(
            "orgdns_hosted_zones",
            "Hosted zones by state and zone GC decision: keep (in use), scheduled (unused, deleted before the next "
            "month), delete (due now), resume (a stopped teardown is queued again), deleting, none.",
            labels=["state", "gc_decision"],
        )
        decisions: dict[tuple[str, str], int] = {}
        for entry in zone_gc.plan(now):
            key = (entry.zone.state, _decision(entry))
            decisions[key] = decisions.get(key, 0) + 1
        others = _counts(
            HostedZone.objects.exclude(state__in=[HostedZone.State.ACTIVE, HostedZone.State.DELETING]), "state"
        )
        for (state,), count in others.items():
            decisions[(state, "none")] = count
        for state in HostedZone.State.values:
            if not any(key[0] == state for key in decisions):
                decisions[(state, "none")] = 0
        for (state, decision), count in sorted(decisions.items()):
            gauge.add_metric([state, decision], count)
        return gauge

    def _access_key_ages(self, now: datetime) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "orgdns_access_key_age_seconds",
            "Age of each organization's zone-scoped IAM access key.",
            labels=["organization"],
        )
        keys = (
            HostedZone.objects.live()
            .exclude(access_key_created_at=None)
            .values_list("organization__name", "access_key_created_at")
        )
        for organization, created in keys:
            gauge.add_metric([organization], (now - created).total_seconds())
        return gauge

    def _certificate_expiry(self) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "orgdns_certificate_expiry_timestamp_seconds",
            "When each issued certificate expires (Unix time): alert on it minus time().",
            labels=["organization", "certificate", "dns_name"],
        )
        issued = (
            Certificate.objects.live()
            .exclude(not_after=None)
            .values_list("organization__name", "pk", "dns_names", "not_after")
        )
        for organization, pk, names, not_after in issued:
            gauge.add_metric([organization, str(pk), names[0] if names else ""], not_after.timestamp())
        return gauge

    def _externaldns(self) -> Iterator[GaugeMetricFamily]:
        """Of each ready cluster whose ExternalDNS was checked (check_externaldns)."""
        labels = ["organization", "cluster"]
        healthy = GaugeMetricFamily(
            "orgdns_externaldns_healthy",
            "1 if the cluster's ExternalDNS worked at its last check, 0 if it failed or could not be checked.",
            labels=labels,
        )
        checked = GaugeMetricFamily(
            "orgdns_externaldns_checked_timestamp_seconds",
            "When the cluster's ExternalDNS was last checked (Unix time).",
            labels=labels,
        )
        last_sync = GaugeMetricFamily(
            "orgdns_externaldns_last_sync_timestamp_seconds",
            "Its last successful sync with Route53 (Unix time), from its own metrics, where they could be read.",
            labels=labels,
        )
        restarts = GaugeMetricFamily("orgdns_externaldns_restarts", "Restarts of its container(s).", labels=labels)
        rows = (
            Cluster.objects.filter(state=Cluster.State.READY)
            .exclude(externaldns_checked_at=None)
            .values_list(
                "organization__name",
                "name",
                "externaldns_health",
                "externaldns_checked_at",
                "externaldns_last_sync_at",
                "externaldns_restarts",
            )
        )
        for organization, name, health, checked_at, synced_at, restart_count in rows:
            key = [organization, name]
            healthy.add_metric(key, int(health == Cluster.Health.OK))
            checked.add_metric(key, checked_at.timestamp())  # type: ignore[union-attr]  # None excluded above
            if synced_at:
                last_sync.add_metric(key, synced_at.timestamp())
            if restart_count is not None:
                restarts.add_metric(key, restart_count)
        yield from (healthy, checked, last_sync, restarts)


def _decision(entry: PlannedZone) -> str:
    if entry.action == billing.KEEP:
        return "scheduled" if entry.not_before else "keep"
    return entry.action


def _counts(queryset: QuerySet[Any], *fields: str) -> dict[tuple[Any, ...], int]:
    """{(values of fields): how many rows have them}, in one grouped query."""
    grouped = queryset.order_by().values_list(*fields).annotate(n=Count("pk"))
    return {tuple(row[:-1]): row[-1] for row in grouped}
