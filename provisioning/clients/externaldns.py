"""The ExternalDNS objects we deploy into a cluster, in the order they are applied, and how to read its records."""

import base64
import hashlib
from dataclasses import dataclass

from .. import budget

OWNER = "orgdns"  # the managed-by label of everything we create in a cluster
LABELS = {"app.kubernetes.io/managed-by": OWNER, "app.kubernetes.io/name": "external-dns"}
POD_SELECTOR = "app.kubernetes.io/name=external-dns"
CLUSTER_OBJECT_NAME = "orgdns-external-dns"
SECRET_NAME = "external-dns-aws"
ANNOTATION = "external-dns.kubernetes.io/hostname"  # the GA prefix; the legacy external-dns.alpha.kubernetes.io/ is read too
# Ownership markers are named `_extdns-<type>.<name>`: inside the zone even for the apex (the default `<type>-<name>`
# puts the apex's marker beside the zone, where ExternalDNS drops it). A wildcard's marker replaces `*` by this.
TXT_PREFIX = "_extdns-%{record_type}."
TXT_WILDCARD = "wildcard"
HEALTH_PORT = 7979
CHECKSUM_ANNOTATION = "orgdns.io/credentials-checksum"
ORGDNS_CLUSTER_ROLE = "orgdns"

# What ExternalDNS reads in a cluster (its ClusterRole). Granting it requires holding it (RBAC escalation prevention).
EXTERNALDNS_RULES = [
    {"apiGroups": [""], "resources": ["services", "pods", "nodes"], "verbs": ["get", "watch", "list"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "watch", "list"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "watch", "list"]},
]
_MANAGE = ["get", "create", "patch", "delete"]
# Everything orgdns's own token must be allowed in a registered cluster: deploy ExternalDNS, follow its rollout,
# remove it, and install certificates. Checked at registration; the README shows it as a ClusterRole.
ORGDNS_CLUSTER_RULES = [
    {"apiGroups": [""], "resources": ["namespaces", "secrets", "serviceaccounts"], "verbs": _MANAGE},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": _MANAGE},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles", "clusterrolebindings"], "verbs": _MANAGE},
    *EXTERNALDNS_RULES,
]


def orgdns_cluster_role(rules=None):
    """The ClusterRole to bind to the ServiceAccount whose token orgdns is given."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": ORGDNS_CLUSTER_ROLE},
        "rules": ORGDNS_CLUSTER_RULES if rules is None else rules,
    }


def required_permissions(rules=ORGDNS_CLUSTER_RULES):
    """(verb, group, resource) triples, one per permission the rules grant."""
    return [(verb, group, resource) for rule in rules for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]]


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
    # Resync interval, caches and events (provisioning/budget.py chooses them for the account's fleet); None: a
    # plain one-minute resync without caches.
    flags: budget.Flags | None = None

    def args(self):
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
            *(self.flags or budget.TODAY).args(),
        ]


def credentials_checksum(access_key_id, secret_access_key):
    """Part of the pod template, so that pods are rolled when the credentials change; tells which key a pod runs with."""
    return hashlib.sha256(f"{access_key_id}:{secret_access_key}".encode()).hexdigest()[:16]


def pod_checksum(obj):
    """The credentials checksum of a pod or of a Deployment's pod template."""
    template = obj.get("spec", {}).get("template")
    meta = template["metadata"] if template else obj["metadata"]
    return (meta.get("annotations") or {}).get(CHECKSUM_ANNOTATION)


def manifests(config, access_key_id, secret_access_key):
    ns = config.namespace
    labels = dict(LABELS)
    checksum = credentials_checksum(access_key_id, secret_access_key)
    credentials = {"AWS_ACCESS_KEY_ID": access_key_id, "AWS_SECRET_ACCESS_KEY": secret_access_key, "AWS_DEFAULT_REGION": config.region}
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "failureThreshold": 3}
    resources = {"requests": {"cpu": "10m", "memory": "64Mi"}}
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
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "external-dns", "namespace": ns, "labels": labels}},
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
            "metadata": {"name": "external-dns", "namespace": ns, "labels": labels},
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


def removal_order(namespace):
    """(kind, name, namespace) of what manifests() creates, workload first so nothing recreates records."""
    return [
        ("Deployment", "external-dns", namespace),
        ("ClusterRoleBinding", CLUSTER_OBJECT_NAME, None),
        ("ClusterRole", CLUSTER_OBJECT_NAME, None),
        ("ServiceAccount", "external-dns", namespace),
        ("Secret", SECRET_NAME, namespace),
        ("Namespace", namespace, None),
    ]


def record_owners(record_sets):
    """{(name, type): owner id} for every record set an ExternalDNS marked as its own, TXT markers included.

    ExternalDNS marks what it owns with a TXT record whose value holds `external-dns/owner=<id>`, named
    `_extdns-<type>.<name>` (ours, TXT_PREFIX), `<type>-<name>` (the default of current releases) or like the
    record itself (older releases).
    """
    record_sets = list(record_sets)
    owners, claims = {}, {}
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


def _claimed(marker_name):
    """(name, type) the ownership marker of this name stands for; type None when the marker names no type."""
    label, _, rest = marker_name.partition(".")
    ours = TXT_PREFIX.split("%")[0]
    if label.startswith(ours) and label[len(ours):].upper() in RECORD_TYPES and rest:
        first, dot, remainder = rest.partition(".")
        return (f"\\052.{remainder}" if first == TXT_WILDCARD and dot else rest), label[len(ours):].upper()
    type_prefix, sep, base = label.partition("-")
    if sep and type_prefix.upper() in RECORD_TYPES:
        return f"{base}.{rest}", type_prefix.upper()
    return marker_name, None


def owned_record_sets(record_sets, owner_id):
    """The record sets that the ExternalDNS with this owner id created, with their TXT ownership records last
    (so that a deletion cut short leaves the markers that let a re-run find what is left)."""
    record_sets = list(record_sets)
    owners = record_owners(record_sets)
    owned = [rs for rs in record_sets if owners.get((rs["Name"], rs["Type"])) == owner_id]
    return sorted(owned, key=lambda rs: rs["Type"] == "TXT")


RECORD_TYPES = {"A", "AAAA", "CNAME", "MX", "NS", "SRV", "TXT", "CAA", "PTR", "NAPTR", "DNAME"}


def _txt_owner(record_set):
    if record_set["Type"] != "TXT":
        return None
    for record in record_set.get("ResourceRecords", []):
        fields = dict(f.split("=", 1) for f in record["Value"].strip('"').split(",") if "=" in f)
        if fields.get("heritage") == "external-dns" and fields.get("external-dns/owner"):
            return fields["external-dns/owner"]
    return None
