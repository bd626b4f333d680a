"""The ExternalDNS objects we deploy into a cluster, in the order they are applied, and how to read its records."""

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from prometheus_client.parser import text_string_to_metric_families

from .errors import ProviderError
from .kube import KubeCluster, Object, Permission, pods_problem

Rule = dict[str, list[str]]  # an RBAC policy rule: apiGroups, resources, verbs
RecordSet = dict[str, Any]  # a Route53 record set, as boto3 lists it

OWNER = "orgdns"  # the managed-by label of everything we create in a cluster
LABELS = {"app.kubernetes.io/managed-by": OWNER, "app.kubernetes.io/name": "external-dns"}
POD_SELECTOR = "app.kubernetes.io/name=external-dns"
CLUSTER_OBJECT_NAME = "orgdns-external-dns"
SECRET_NAME = "external-dns-aws"
ANNOTATION = (
    "external-dns.kubernetes.io/hostname"  # the GA prefix; the legacy external-dns.alpha.kubernetes.io/ is read too
)
# Ownership markers are named `_extdns-<type>.<name>`: inside the zone even for the apex (the default `<type>-<name>`
# puts the apex's marker beside the zone, where ExternalDNS drops it). A wildcard's marker replaces `*` by this.
TXT_PREFIX = "_extdns-%{record_type}."
TXT_WILDCARD = "wildcard"
HEALTH_PORT = 7979  # /healthz and /metrics
DEPLOYMENT_NAME = "external-dns"
CHECKSUM_ANNOTATION = "orgdns.io/credentials-checksum"
ORGDNS_CLUSTER_ROLE = "orgdns"
PLAIN_RESYNC = ["--interval=1m"]  # ExternalDNS's flags when none are chosen: a one-minute resync without caches

# What ExternalDNS reads in a cluster (its ClusterRole). Granting it requires holding it (RBAC escalation prevention).
EXTERNALDNS_RULES: list[Rule] = [
    {"apiGroups": [""], "resources": ["services", "pods", "nodes"], "verbs": ["get", "watch", "list"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "watch", "list"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "watch", "list"]},
]
_MANAGE = ["get", "create", "patch", "delete"]
# Everything orgdns's own token must be allowed in a registered cluster: deploy ExternalDNS, follow its rollout,
# remove it, and install certificates. Checked at registration; docs/policies/orgdns-cluster-role.yaml is it as a ClusterRole.
ORGDNS_CLUSTER_RULES: list[Rule] = [
    {"apiGroups": [""], "resources": ["namespaces", "secrets", "serviceaccounts"], "verbs": _MANAGE},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": _MANAGE},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
    # ExternalDNS's /metrics through the API server (health checks). Cluster-wide: a RoleBinding in ExternalDNS's
    # namespace would go with the namespace, which orgdns creates and deletes, and pod names cannot be listed ahead.
    {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]},
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterroles", "clusterrolebindings"],
        "verbs": _MANAGE,
    },
    *EXTERNALDNS_RULES,
]


def orgdns_cluster_role(rules: list[Rule] | None = None) -> Object:
    """The ClusterRole to bind to the ServiceAccount whose token orgdns is given."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": ORGDNS_CLUSTER_ROLE},
        "rules": ORGDNS_CLUSTER_RULES if rules is None else rules,
    }


def required_permissions(rules: Iterable[Rule] = ORGDNS_CLUSTER_RULES) -> list[Permission]:
    """(verb, group, resource) triples, one per permission the rules grant."""
    return [
        (verb, group, resource)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


class Flags(Protocol):
    """ExternalDNS's flags that decide its Route53 cost (provisioning.budget.Flags)."""

    def args(self) -> list[str]: ...


@dataclass(frozen=True)
class ExternalDNSConfig:
    namespace: str
    image: str
    zone_name: str
    zone_id: str
    owner_id: str
    policy: str
    region: str
    memory_limit: str = ""
    # Resync interval, caches and events (provisioning/budget.py chooses them for the account's fleet); None:
    # PLAIN_RESYNC.
    flags: Flags | None = None

    def args(self) -> list[str]:
        return [
            "--source=service",
            "--source=ingress",
            "--provider=aws",
            "--registry=txt",
            f"--txt-owner-id={self.owner_id}",
            f"--domain-filter={self.zone_name}",
            f"--zone-id-filter={self.zone_id}",
            "--aws-zone-type=public",
            f"--policy={self.policy}",
            f"--txt-prefix={TXT_PREFIX}",
            f"--txt-wildcard-replacement={TXT_WILDCARD}",
            "--enable-legacy-annotation-prefix",
            *(self.flags.args() if self.flags else PLAIN_RESYNC),
        ]


def credentials_checksum(access_key_id: str, secret_access_key: str) -> str:
    """Part of the pod template, so that pods are rolled when the credentials change; tells which key a pod runs with."""
    return hashlib.sha256(f"{access_key_id}:{secret_access_key}".encode()).hexdigest()[:16]


def pod_checksum(obj: Object) -> str | None:
    """The credentials checksum of a pod or of a Deployment's pod template."""
    template = obj.get("spec", {}).get("template")
    meta = template["metadata"] if template else obj["metadata"]
    return (meta.get("annotations") or {}).get(CHECKSUM_ANNOTATION)


def key_rollout_problem(pods: Iterable[Object], checksum: str) -> str:
    """Why ExternalDNS's pods do not all run with the credentials of this checksum, "" if they do and one is ready.
    Pods being deleted do not count."""
    live = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    stale = [pod["metadata"]["name"] for pod in live if pod_checksum(pod) != checksum]
    if stale:
        return f"pods {', '.join(stale)} still run with an earlier key"
    if not any(_ready(pod) for pod in live):
        return "no ExternalDNS pod is ready with the new key"
    return ""


def manifests(config: ExternalDNSConfig, access_key_id: str, secret_access_key: str) -> list[Object]:
    ns = config.namespace
    labels = dict(LABELS)
    checksum = credentials_checksum(access_key_id, secret_access_key)
    credentials = {
        "AWS_ACCESS_KEY_ID": access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret_access_key,
        "AWS_DEFAULT_REGION": config.region,
    }
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "failureThreshold": 3}
    resources: dict[str, dict[str, str]] = {"requests": {"cpu": "10m", "memory": "64Mi"}}
    if config.memory_limit:
        resources["limits"] = {"memory": config.memory_limit}
    restricted = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {**labels, **restricted}}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": SECRET_NAME, "namespace": ns, "labels": labels},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in credentials.items()},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "external-dns", "namespace": ns, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": CLUSTER_OBJECT_NAME, "labels": labels},
            "rules": EXTERNALDNS_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": CLUSTER_OBJECT_NAME, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_OBJECT_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": "external-dns", "namespace": ns}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": DEPLOYMENT_NAME, "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": {"app.kubernetes.io/name": "external-dns"}},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {CHECKSUM_ANNOTATION: checksum},
                    },
                    "spec": {
                        "serviceAccountName": "external-dns",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65534,
                            "runAsGroup": 65534,
                            "fsGroup": 65534,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "external-dns",
                                "image": config.image,
                                "args": config.args(),
                                "envFrom": [{"secretRef": {"name": SECRET_NAME}}],
                                "ports": [{"name": "http", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
                                "livenessProbe": probe,
                                "readinessProbe": probe,
                                "terminationMessagePolicy": "FallbackToLogsOnError",
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "resources": resources,
                            }
                        ],
                    },
                },
            },
        },
    ]


def removal_order(namespace: str) -> list[tuple[str, str, str | None]]:
    """(kind, name, namespace) of what manifests() creates, workload first so nothing recreates records."""
    return [
        ("Deployment", DEPLOYMENT_NAME, namespace),
        ("ClusterRoleBinding", CLUSTER_OBJECT_NAME, None),
        ("ClusterRole", CLUSTER_OBJECT_NAME, None),
        ("ServiceAccount", "external-dns", namespace),
        ("Secret", SECRET_NAME, namespace),
        ("Namespace", namespace, None),
    ]


def record_owners(record_sets: Iterable[RecordSet]) -> dict[tuple[str, str], str]:
    """{(name, type): owner id} for every record set an ExternalDNS marked as its own, TXT markers included.

    ExternalDNS marks what it owns with a TXT record whose value holds `external-dns/owner=<id>`, named
    `_extdns-<type>.<name>` (ours, TXT_PREFIX), `<type>-<name>` (the default of current releases) or like the
    record itself (older releases).
    """
    record_sets = list(record_sets)
    owners: dict[tuple[str, str], str] = {}
    claims: dict[tuple[str, str | None], str] = {}
    for rs in record_sets:
        owner = _txt_owner(rs)
        if owner is None:
            continue
        owners[(rs["Name"], "TXT")] = owner
        claims[_claimed(rs["Name"])] = owner
    for rs in record_sets:
        if rs["Type"] != "TXT":
            owner = claims.get((rs["Name"], rs["Type"])) or claims.get((rs["Name"], None))
            if owner:
                owners[(rs["Name"], rs["Type"])] = owner
    return owners


def _claimed(marker_name: str) -> tuple[str, str | None]:
    """(name, type) the ownership marker of this name stands for; type None when the marker names no type."""
    label, _, rest = marker_name.partition(".")
    ours = TXT_PREFIX.split("%")[0]
    if label.startswith(ours) and label[len(ours) :].upper() in RECORD_TYPES and rest:
        first, dot, remainder = rest.partition(".")
        return (f"\\052.{remainder}" if first == TXT_WILDCARD and dot else rest), label[len(ours) :].upper()
    type_prefix, sep, base = label.partition("-")
    if sep and type_prefix.upper() in RECORD_TYPES:
        return f"{base}.{rest}", type_prefix.upper()
    return marker_name, None


def owned_record_sets(record_sets: Iterable[RecordSet], owner_id: str) -> list[RecordSet]:
    """The record sets that the ExternalDNS with this owner id created, with their TXT ownership records last
    (so that a deletion cut short leaves the markers that let a re-run find what is left)."""
    record_sets = list(record_sets)
    owners = record_owners(record_sets)
    owned = [rs for rs in record_sets if owners.get((rs["Name"], rs["Type"])) == owner_id]
    return sorted(owned, key=lambda rs: rs["Type"] == "TXT")


RECORD_TYPES = {"A", "AAAA", "CNAME", "MX", "NS", "SRV", "TXT", "CAA", "PTR", "NAPTR", "DNAME"}


def _txt_owner(record_set: RecordSet) -> str | None:
    if record_set["Type"] != "TXT":
        return None
    for record in record_set.get("ResourceRecords", []):
        fields = dict(f.split("=", 1) for f in record["Value"].strip('"').split(",") if "=" in f)
        if fields.get("heritage") == "external-dns" and fields.get("external-dns/owner"):
            return fields["external-dns/owner"]
    return None


# --- health: what the cluster API tells about a deployed ExternalDNS -------------------------------------------------

# ExternalDNS's own metrics (v0.23, controller/metrics.go) that tell whether it syncs.
LAST_SYNC = "external_dns_controller_last_sync_timestamp_seconds"  # the last successful sync; 0 before the first
FAILED_SYNCS = "external_dns_controller_consecutive_soft_errors"  # syncs failed in a row (a hard error exits)
ERROR_COUNTERS = ("external_dns_registry_errors_total", "external_dns_source_errors_total")
DEFAULT_INTERVAL = 60  # ExternalDNS's --interval when not given
STALE_MARGIN = 300  # seconds beyond two intervals without a successful sync before it counts as failing


@dataclass(frozen=True)
class SyncMetrics:
    last_sync: float  # Unix time; 0 before its first successful sync
    failed_syncs: int
    errors: int  # registry and source errors since it started


def sync_metrics(text: str) -> SyncMetrics:
    """The SyncMetrics in an ExternalDNS /metrics answer; ValueError if it is not ExternalDNS's metrics."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = sample.value
    if LAST_SYNC not in values:
        raise ValueError(f"the answer has no {LAST_SYNC}: not ExternalDNS's metrics")
    return SyncMetrics(
        last_sync=values[LAST_SYNC],
        failed_syncs=int(values.get(FAILED_SYNCS, 0)),
        errors=int(sum(values.get(name, 0) for name in ERROR_COUNTERS)),
    )


@dataclass(frozen=True)
class Observation:
    """ExternalDNS in a cluster, as one health check read it."""

    deployed: bool
    replicas: int = 1
    available: bool = False
    problem: str = ""  # from its pods, when one waits or has ended
    restarts: int = 0
    running_since: float = 0.0  # Unix time its container started; 0 if none runs
    interval: int = DEFAULT_INTERVAL
    metrics: SyncMetrics | None = None
    metrics_error: str = ""


def observe(kube: KubeCluster, namespace: str) -> Observation:
    """Read ExternalDNS's Deployment, its pods and (through the API server's pod proxy) a ready pod's /metrics: three
    requests to the cluster API, two when no pod is ready."""
    deployment = kube.get("Deployment", DEPLOYMENT_NAME, namespace)
    if deployment is None:
        return Observation(deployed=False)
    pods = kube.list("Pod", namespace, POD_SELECTOR)
    statuses = [s for pod in pods for s in pod.get("status", {}).get("containerStatuses", [])]
    started = [s["state"]["running"].get("startedAt") for s in statuses if (s.get("state") or {}).get("running")]
    ready = [pod for pod in pods if _ready(pod)]
    metrics, metrics_error = None, "no ExternalDNS pod is ready"
    if ready:
        try:
            metrics = sync_metrics(kube.pod_proxy_get(namespace, ready[0]["metadata"]["name"], HEALTH_PORT, "metrics"))
            metrics_error = ""
        except ProviderError as exc:
            metrics_error = exc.message[:300]
        except ValueError as exc:
            metrics_error = str(exc)[:300]
    spec = deployment.get("spec", {})
    return Observation(
        deployed=True,
        replicas=spec.get("replicas", 1),
        available=deployment.get("status", {}).get("availableReplicas", 0) >= 1,
        problem=pods_problem(pods),
        restarts=sum(s.get("restartCount", 0) for s in statuses),
        running_since=min((_timestamp(t) for t in started if t), default=0.0),
        interval=_interval(spec.get("template", {}).get("spec", {}).get("containers", [{}])[0].get("args", [])),
        metrics=metrics,
        metrics_error=metrics_error,
    )


def health_problem(observation: Observation, now: float) -> str:
    """Why this ExternalDNS is not working at Unix time now, or "" if, as far as the observation tells, it is."""
    if not observation.deployed:
        return "ExternalDNS is not deployed: its Deployment is missing from the cluster"
    if observation.replicas == 0:
        return "its Deployment is scaled to 0 replicas"
    if not observation.available:
        return observation.problem or "no ExternalDNS pod is available"
    metrics = observation.metrics
    if metrics is None:
        return ""
    if metrics.failed_syncs:
        since = (
            f"last success {short_duration(now - metrics.last_sync)} ago"
            if metrics.last_sync
            else "none succeeded since it started"
        )
        return f"its last {metrics.failed_syncs} syncs with Route53 failed ({since})"
    last = metrics.last_sync or observation.running_since
    if last and now - last > 2 * observation.interval + STALE_MARGIN:
        return f"no successful sync for {short_duration(now - last)} (it syncs every {short_duration(observation.interval)})"
    return ""


def _ready(pod: Object) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions", [])
    )


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")


def _interval(args: Iterable[str]) -> int:
    """Seconds of the --interval among ExternalDNS's args (a Go duration such as 1h, 1m30s)."""
    for arg in args:
        if arg.startswith("--interval="):
            units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
            seconds = sum(float(n) * units[u] for n, u in GO_DURATION_PART.findall(arg.split("=", 1)[1]))
            return max(1, int(seconds))
    return DEFAULT_INTERVAL


def short_duration(seconds: float) -> str:
    """40 s, 12 min, 3 h: how long ago or for how long, as the pages say it."""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
