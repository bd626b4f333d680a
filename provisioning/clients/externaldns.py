"""The ExternalDNS objects we deploy into a cluster, in the order they are applied, and how to read its records."""

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import yaml
from prometheus_client.parser import text_string_to_metric_families

from .errors import ProviderError
from .kube import FORBIDDEN, Access, KubeCluster, Object, pods_problem

Rule = dict[str, list[str]]  # an RBAC policy rule: apiGroups, resources, verbs
RecordSet = dict[str, Any]  # a Route53 record set, as boto3 lists it

OWNER = "orgdns"  # the managed-by label of everything we create in a cluster
LABELS = {"app.kubernetes.io/managed-by": OWNER, "app.kubernetes.io/name": "external-dns"}
POD_SELECTOR = "app.kubernetes.io/name=external-dns"
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
SERVICE_NAME = "external-dns"  # a ClusterIP Service in front of its metrics port, for the API server's service proxy
# The Service as the API server's proxy names it (scheme:name:port) and RBAC sees it: the Role pins exactly this.
METRICS_PROXY_NAME = f"http:{SERVICE_NAME}:{HEALTH_PORT}"
CHECKSUM_ANNOTATION = "orgdns.io/credentials-checksum"
PLAIN_RESYNC = ["--interval=1m"]  # ExternalDNS's flags when none are chosen: a one-minute resync without caches

# --- the tenant's part: the bootstrap manifest --------------------------------------------------------------------

EXTERNALDNS_SERVICE_ACCOUNT = "external-dns"
EXTERNALDNS_CLUSTER_ROLE = "orgdns-external-dns"  # ExternalDNS's read-only ClusterRole and its binding
ORGDNS_SERVICE_ACCOUNT = "orgdns"  # whose token orgdns is given; in ExternalDNS's namespace
ORGDNS_ROLE = "orgdns"  # the Role (and RoleBinding) in ExternalDNS's namespace
ORGDNS_CHECKS_ROLE = "orgdns-checks"  # the ClusterRole (and binding) of the few objects orgdns reads to check the setup
CERTIFICATES_CLUSTER_ROLE = "orgdns-certificates"  # bound by the tenant, per namespace, for certificate Secrets
TOKEN_SECRET = "orgdns-token"
BOOTSTRAP_LABELS = {"app.kubernetes.io/part-of": "orgdns"}  # not managed-by orgdns: the tenant owns these

# What ExternalDNS reads in a cluster (its ClusterRole).
EXTERNALDNS_RULES: list[Rule] = [
    {"apiGroups": [""], "resources": ["services", "pods", "nodes"], "verbs": ["get", "watch", "list"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "watch", "list"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "watch", "list"]},
]
# orgdns creates, changes and deletes its objects with server-side apply, which the API server authorizes as `create`
# with the object's name: so even create is pinned by name (a plain POST, kubectl create, could not be).
_MANAGE = ["get", "create", "patch", "delete"]


def orgdns_rules() -> list[Rule]:
    """The Role orgdns holds in ExternalDNS's namespace: its own three objects by name, reading what tells how
    ExternalDNS runs, and ExternalDNS's metrics through the API server's service proxy."""
    return [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET_NAME], "verbs": _MANAGE},
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": [DEPLOYMENT_NAME], "verbs": _MANAGE},
        {"apiGroups": [""], "resources": ["services"], "resourceNames": [SERVICE_NAME], "verbs": _MANAGE},
        {
            "apiGroups": [""],
            "resources": ["serviceaccounts"],
            "resourceNames": [EXTERNALDNS_SERVICE_ACCOUNT],
            "verbs": ["get"],
        },
        {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list"]},
        {
            "apiGroups": [""],
            "resources": ["services/proxy"],
            "resourceNames": [METRICS_PROXY_NAME],
            "verbs": ["get"],
        },
    ]


def orgdns_check_rules(namespace: str) -> list[Rule]:
    """The cluster-scoped objects orgdns reads, by name only: kube-system's namespace (its UID tells one cluster from
    another), ExternalDNS's namespace, its ClusterRole and binding and the certificates' ClusterRole (drift)."""
    return [
        {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["kube-system", namespace], "verbs": ["get"]},
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "resourceNames": [EXTERNALDNS_CLUSTER_ROLE, CERTIFICATES_CLUSTER_ROLE],
            "verbs": ["get"],
        },
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterrolebindings"],
            "resourceNames": [EXTERNALDNS_CLUSTER_ROLE],
            "verbs": ["get"],
        },
    ]


# What orgdns needs in a namespace to install certificates there; the tenant binds it with a RoleBinding per namespace.
# Secret names are chosen per installation, so the ClusterRole names none; a Role with resourceNames works too.
CERTIFICATE_RULES: list[Rule] = [{"apiGroups": [""], "resources": ["secrets"], "verbs": _MANAGE}]


def required_access(namespace: str) -> list[Access]:
    """Every request orgdns's token must be allowed, exactly as orgdns makes them (registration checks each)."""
    wanted = [
        Access(verb, group, resource, namespace=namespace, name=name)
        for group, resource, name in (
            ("", "secrets", SECRET_NAME),
            ("apps", "deployments", DEPLOYMENT_NAME),
            ("", "services", SERVICE_NAME),
        )
        for verb in _MANAGE
    ]
    wanted += [Access(verb, "", "pods", namespace=namespace) for verb in ("get", "list")]
    wanted += [Access("list", "apps", "replicasets", namespace=namespace)]
    wanted += [Access("get", "", "serviceaccounts", namespace=namespace, name=EXTERNALDNS_SERVICE_ACCOUNT)]
    wanted += [Access("get", "", "services", "proxy", namespace, METRICS_PROXY_NAME)]
    wanted += [Access("get", "", "namespaces", name=name) for name in ("kube-system", namespace)]
    wanted += [
        Access("get", "rbac.authorization.k8s.io", "clusterroles", name=EXTERNALDNS_CLUSTER_ROLE),
        Access("get", "rbac.authorization.k8s.io", "clusterrolebindings", name=EXTERNALDNS_CLUSTER_ROLE),
    ]
    return wanted


# Requests no token given to orgdns should be allowed, with what holding them means; registration asks for each and
# warns (the cluster still registers) naming those allowed.
DANGEROUS_ACCESS: list[tuple[Access, str]] = [
    (Access("list", "", "secrets"), "this token can read every Secret of the cluster"),
    (Access("create", "", "pods", namespace="kube-system"), "it can run pods in kube-system"),
    (
        Access("create", "", "serviceaccounts", "token", "kube-system"),
        "it can mint tokens for kube-system's ServiceAccounts",
    ),
    (
        Access("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
        "it can grant itself anything (create ClusterRoleBindings)",
    ),
    (Access("delete", "", "namespaces"), "it can delete any namespace"),
    (Access("get", "", "pods", "proxy"), "it can reach any pod's ports through the API server (pods/proxy)"),
    (Access("create", "apps", "deployments", namespace="kube-system"), "it can run Deployments in kube-system"),
]


def bootstrap(namespace: str) -> list[Object]:
    """The objects the tenant applies (as cluster admin) before registering: ExternalDNS's namespace, its
    ServiceAccount and read-only ClusterRole, and orgdns's ServiceAccount, its token, its Role in that namespace and the
    few reads its checks make. Plus the ClusterRole the tenant binds in namespaces where certificates may go."""
    labels = dict(BOOTSTRAP_LABELS)
    restricted = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
    rbac = "rbac.authorization.k8s.io/v1"

    def binding(kind: str, name: str, role_kind: str, account: str, ns: str | None = None) -> Object:
        meta: dict[str, Any] = {"name": name, "labels": labels}
        if ns:
            meta["namespace"] = ns
        return {
            "apiVersion": rbac,
            "kind": kind,
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {**labels, **restricted}}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": EXTERNALDNS_SERVICE_ACCOUNT, "namespace": namespace, "labels": labels},
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": EXTERNALDNS_CLUSTER_ROLE, "labels": labels},
            "rules": EXTERNALDNS_RULES,
        },
        binding("ClusterRoleBinding", EXTERNALDNS_CLUSTER_ROLE, "ClusterRole", EXTERNALDNS_SERVICE_ACCOUNT),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": ORGDNS_SERVICE_ACCOUNT, "namespace": namespace, "labels": labels},
        },
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": {"name": ORGDNS_ROLE, "namespace": namespace, "labels": labels},
            "rules": orgdns_rules(),
        },
        binding("RoleBinding", ORGDNS_ROLE, "Role", ORGDNS_SERVICE_ACCOUNT, namespace),
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": ORGDNS_CHECKS_ROLE, "labels": labels},
            "rules": orgdns_check_rules(namespace),
        },
        binding("ClusterRoleBinding", ORGDNS_CHECKS_ROLE, "ClusterRole", ORGDNS_SERVICE_ACCOUNT),
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": CERTIFICATES_CLUSTER_ROLE, "labels": labels},
            "rules": CERTIFICATE_RULES,
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": TOKEN_SECRET,
                "namespace": namespace,
                "labels": labels,
                "annotations": {"kubernetes.io/service-account.name": ORGDNS_SERVICE_ACCOUNT},
            },
        },
    ]


def token_command(namespace: str) -> str:
    """The shell line that prints orgdns's token once the bootstrap is applied."""
    return f"kubectl -n {namespace} get secret {TOKEN_SECRET} -o jsonpath='{{.data.token}}' | base64 -d"


def kubeconfig_commands(namespace: str) -> str:
    """Shell lines that write orgdns.kubeconfig (the current context's server and CA, orgdns's token) to upload."""
    return "\n".join(
        [
            "kubectl config view --raw --minify --flatten > orgdns.kubeconfig",
            "USER=$(kubectl config view --kubeconfig orgdns.kubeconfig -o jsonpath='{.users[0].name}')",
            "kubectl config unset --kubeconfig orgdns.kubeconfig users.$USER",
            f"kubectl config set-credentials $USER --kubeconfig orgdns.kubeconfig --token=$({token_command(namespace)})",
        ]
    )


def bootstrap_yaml(namespace: str, header: str = "") -> str:
    """The bootstrap as one YAML stream for `kubectl apply -f`, with how to get the token in its opening comment."""
    lines = [
        "# orgdns bootstrap: apply as cluster admin before registering the cluster with orgdns.",
        *(f"# {line}" for line in header.splitlines()),
        "#   kubectl apply -f orgdns-bootstrap.yaml",
        "# orgdns's token, once applied (the token controller fills the Secret within seconds):",
        f"#   {token_command(namespace)}",
        "# A kubeconfig to upload, from your current context:",
        *(f"#   {line}" for line in kubeconfig_commands(namespace).splitlines()),
        "# To remove it all after deregistering: kubectl delete -f orgdns-bootstrap.yaml",
    ]
    documents = [yaml.safe_dump(obj, sort_keys=False) for obj in bootstrap(namespace)]
    return "\n".join(lines) + "\n---\n" + "---\n".join(documents)


class Flags(Protocol):
    """ExternalDNS's flags that decide its Route53 cost (provisioning.rules.budget.Flags)."""

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
    # Resync interval, caches and events (provisioning/rules/budget.py chooses them for the account's fleet); None:
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
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": SECRET_NAME, "namespace": ns, "labels": labels},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in credentials.items()},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE_NAME, "namespace": ns, "labels": labels},
            "spec": {
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": "external-dns"},
                "ports": [{"name": "http", "port": HEALTH_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
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
                        "serviceAccountName": EXTERNALDNS_SERVICE_ACCOUNT,
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


def removal_order(namespace: str) -> list[tuple[str, str, str]]:
    """(kind, name, namespace) of what manifests() creates, workload first so nothing recreates records. The
    namespace, ServiceAccounts and RBAC are the tenant's (the bootstrap): never removed by orgdns."""
    return [
        ("Deployment", DEPLOYMENT_NAME, namespace),
        ("Service", SERVICE_NAME, namespace),
        ("Secret", SECRET_NAME, namespace),
    ]


def setup_drift(kube: KubeCluster, namespace: str) -> list[str]:
    """How the tenant's part in the cluster (the bootstrap) differs from what ExternalDNS needs, one sentence each;
    [] if it does not. Read-only: five GETs."""
    found: list[str] = []

    def read(kind: str, name: str, ns: str | None = None) -> Object | None | str:
        try:
            return kube.get(kind, name, ns)
        except ProviderError as exc:
            if exc.code != FORBIDDEN:
                raise
            return f"orgdns may no longer read {kind} {name} (its ClusterRole {ORGDNS_CHECKS_ROLE} or Role {ORGDNS_ROLE} changed)"

    checks: list[tuple[str, str, str | None]] = [
        ("Namespace", namespace, None),
        ("ServiceAccount", EXTERNALDNS_SERVICE_ACCOUNT, namespace),
        ("ClusterRole", EXTERNALDNS_CLUSTER_ROLE, None),
        ("ClusterRoleBinding", EXTERNALDNS_CLUSTER_ROLE, None),
    ]
    objects: dict[str, Object] = {}
    for kind, name, ns in checks:
        obj = read(kind, name, ns)
        if isinstance(obj, str):
            found.append(obj)
        elif obj is None or obj.get("metadata", {}).get("deletionTimestamp"):
            where = f" in namespace {ns}" if ns else ""
            found.append(f"{kind} {name}{where} is gone")
        else:
            objects[kind] = obj
    role = objects.get("ClusterRole")
    if role is not None:
        lacking = _rule_keys(EXTERNALDNS_RULES) - _rule_keys(role.get("rules") or [])
        extra = _rule_keys(role.get("rules") or []) - _rule_keys(EXTERNALDNS_RULES)
        if lacking:
            found.append(f"ClusterRole {EXTERNALDNS_CLUSTER_ROLE} no longer grants ExternalDNS {_listed(lacking)}")
        if extra:
            found.append(f"ClusterRole {EXTERNALDNS_CLUSTER_ROLE} now also grants {_listed(extra)}")
    role_binding = objects.get("ClusterRoleBinding")
    if role_binding is not None:
        subject = {"kind": "ServiceAccount", "name": EXTERNALDNS_SERVICE_ACCOUNT, "namespace": namespace}
        bound = (
            any({key: s.get(key) for key in subject} == subject for s in role_binding.get("subjects") or [])
            and (role_binding.get("roleRef") or {}).get("name") == EXTERNALDNS_CLUSTER_ROLE
        )
        if not bound:
            found.append(
                f"ClusterRoleBinding {EXTERNALDNS_CLUSTER_ROLE} no longer binds ClusterRole {EXTERNALDNS_CLUSTER_ROLE} "
                f"to ServiceAccount {namespace}/{EXTERNALDNS_SERVICE_ACCOUNT}"
            )
    return found


def _rule_keys(rules: Iterable[Rule]) -> set[tuple[str, str, str, str]]:
    """(verb, group, resource, name) for every permission the rules grant; name "" for any."""
    return {
        (verb, group, resource, name)
        for rule in rules
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
        for name in (rule.get("resourceNames") or [""])
    }


def _listed(keys: set[tuple[str, str, str, str]]) -> str:
    shown = sorted(
        f"{verb} {resource}{'.' + group if group else ''}{' ' + name if name else ''}"
        for verb, group, resource, name in keys
    )
    return ", ".join(shown[:8]) + (f" and {len(shown) - 8} more" if len(shown) > 8 else "")


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


# --- ownership one page of a zone at a time ----------------------------------------------------------------------------


def marker_names(record_set: RecordSet) -> list[str]:
    """The names an ownership marker of this record set may have, in each style record_owners reads: ours
    (`_extdns-<type>.<name>`, "wildcard" for a leading `*`), the record's own name (older releases), and
    `<type>-<name>` (the default of current releases)."""
    name, rtype = record_set["Name"], record_set["Type"].lower()
    first, _, rest = name.partition(".")
    ours = f"{TXT_PREFIX.split('%')[0]}{rtype}."
    return [
        f"{ours}{TXT_WILDCARD}.{rest}" if first == "\\052" else f"{ours}{name}",
        name,
        f"{rtype}-{first}.{rest}",
    ]


def route53_orders(name: str, rtype: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """Where Route53 lists a record set: by name with its labels reversed, then by type. Route53 documents the name
    with its trailing dot (`com.example.www.`), which puts `a-b` before `a`; some implementations (moto) compare it
    without. Both orders, so that a decision holds in either."""
    reversed_name = ".".join(reversed(name.rstrip(".").split(".")))
    return (reversed_name + ".", rtype), (reversed_name, rtype)


def listed_between(name: str, rtype: str, first: RecordSet | None, last: RecordSet | None) -> bool:
    """Whether Route53 lists (name, rtype) between these two record sets, in either order (None: the zone's end)."""
    orders = route53_orders(name, rtype)
    low = route53_orders(first["Name"], first["Type"]) if first else None
    high = route53_orders(last["Name"], last["Type"]) if last else None
    return all(
        (low is None or low[i] <= orders[i]) and (high is None or orders[i] <= high[i]) for i in range(len(orders))
    )


def markers_elsewhere(
    page: list[RecordSet], read: list[RecordSet], zone_name: str, zone_start: bool, zone_end: bool
) -> list[str]:
    """The marker names that may give an owner to a record set of this page yet were not read with it: those of its
    record sets without an owner among `read` (the page and what the same answer held after it), that Route53 lists
    before the page's first record set (unless the page starts the zone) or after the last one read (unless that
    is the zone's last). The zone's own SOA, and names outside the zone, have none. Sorted in Route53's order."""
    if not page:
        return []
    zone = zone_name.rstrip(".") + "."
    owners = record_owners(read)
    present = {(rs["Name"], rs["Type"]) for rs in read}
    first, last = (None if zone_start else page[0]), (None if zone_end else read[-1])
    wanted = {
        name
        for rs in page
        if rs["Type"] != "SOA" and (rs["Name"], rs["Type"]) not in owners
        for name in marker_names(rs)
        if (name, "TXT") != (rs["Name"], rs["Type"])
        and (name == zone or name.endswith("." + zone))
        and (name, "TXT") not in present
        and not listed_between(name, "TXT", first, last)
    }
    return sorted(wanted, key=lambda name: route53_orders(name, "TXT")[0])


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


def observe(kube: KubeCluster, namespace: str, through_service: bool = True) -> Observation:
    """Read ExternalDNS's Deployment, its pods and (through the API server's service proxy, or for a cluster set up
    before the bootstrap its pod proxy) a ready pod's /metrics: three requests to the cluster API, two when no pod
    is ready."""
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
            if through_service:
                text = kube.service_proxy_get(namespace, METRICS_PROXY_NAME, "metrics")
            else:
                text = kube.pod_proxy_get(namespace, ready[0]["metadata"]["name"], HEALTH_PORT, "metrics")
            metrics = sync_metrics(text)
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


GO_DURATION_PART = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)(h|ms|m|s)")
GO_DURATION = re.compile(rf"(?:{GO_DURATION_PART.pattern}){{1,4}}")


def _interval(args: Iterable[str]) -> int:
    """Seconds of the --interval among ExternalDNS's args (a Go duration such as 1h, 1m30s); the default if it is not
    one."""
    for arg in args:
        if isinstance(arg, str) and arg.startswith("--interval="):
            duration = arg.split("=", 1)[1]
            if not GO_DURATION.fullmatch(duration):
                return DEFAULT_INTERVAL
            units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
            seconds = sum(float(n) * units[u] for n, u in GO_DURATION_PART.findall(duration))
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
