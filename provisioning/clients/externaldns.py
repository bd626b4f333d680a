"""The ExternalDNS objects we deploy into a cluster, in the order they are applied."""

import hashlib
from dataclasses import dataclass

OWNER = "orgdns"  # the managed-by label of everything we create in a cluster
LABELS = {"app.kubernetes.io/managed-by": OWNER, "app.kubernetes.io/name": "external-dns"}
CLUSTER_OBJECT_NAME = "orgdns-external-dns"
SECRET_NAME = "external-dns-aws"


@dataclass(frozen=True)
class ExternalDNSConfig:
    namespace: str
    image: str
    zone_name: str
    zone_id: str
    owner_id: str
    policy: str
    annotation_prefix: str
    region: str

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
            f"--annotation-prefix={self.annotation_prefix}",
            "--interval=1m",
        ]


def manifests(config, access_key_id, secret_access_key):
    ns = config.namespace
    labels = dict(LABELS)
    # Pods are rolled when the credentials change: the checksum is part of the pod template.
    checksum = hashlib.sha256(f"{access_key_id}:{secret_access_key}".encode()).hexdigest()[:16]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": SECRET_NAME, "namespace": ns, "labels": labels},
            "stringData": {
                "AWS_ACCESS_KEY_ID": access_key_id,
                "AWS_SECRET_ACCESS_KEY": secret_access_key,
                "AWS_DEFAULT_REGION": config.region,
            },
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "external-dns", "namespace": ns, "labels": labels}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": CLUSTER_OBJECT_NAME, "labels": labels},
            "rules": [
                {"apiGroups": [""], "resources": ["services", "pods", "nodes"], "verbs": ["get", "watch", "list"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "watch", "list"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "watch", "list"]},
            ],
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
                        "annotations": {"orgdns.io/credentials-checksum": checksum},
                    },
                    "spec": {
                        "serviceAccountName": "external-dns",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "fsGroup": 65534},
                        "containers": [
                            {
                                "name": "external-dns",
                                "image": config.image,
                                "args": config.args(),
                                "envFrom": [{"secretRef": {"name": SECRET_NAME}}],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
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
    either like the record itself or `<type>-<name>` (the format of current releases).
    """
    record_sets = list(record_sets)
    owners, claims = {}, {}
    for rs in record_sets:
        owner = _txt_owner(rs)
        if owner is None:
            continue
        owners[(rs["Name"], "TXT")] = owner
        label, _, rest = rs["Name"].partition(".")
        type_prefix, sep, base = label.partition("-")
        if sep and type_prefix.upper() in RECORD_TYPES:
            claims[(f"{base}.{rest}", type_prefix.upper())] = owner
        else:
            claims[(rs["Name"], None)] = owner
    for rs in record_sets:
        if rs["Type"] != "TXT":
            owner = claims.get((rs["Name"], rs["Type"])) or claims.get((rs["Name"], None))
            if owner:
                owners[(rs["Name"], rs["Type"])] = owner
    return owners


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
