"""What orgdns applies to a cluster to run ExternalDNS (clients/externaldns.py), and what it removes."""

import base64
from dataclasses import replace

from provisioning.clients import externaldns
from provisioning.clients.externaldns import ExternalDNSConfig, key_rollout_problem, manifests, removal_order
from provisioning.rules import budget

CONFIG = ExternalDNSConfig(
    namespace="external-dns",
    image="registry.k8s.io/external-dns/external-dns:v0.23.0",
    zone_name="acme.orgdns.test",
    zone_id="ZACME",
    owner_id="acme-prod",
    policy="sync",
    region="us-east-1",
)


def by_kind(objects):
    return {obj["kind"]: obj for obj in objects}


def test_externaldns_runs_for_its_zone_only_with_the_budgets_flags():
    args = CONFIG.args()
    for flag in (
        "--txt-owner-id=acme-prod",
        "--domain-filter=acme.orgdns.test",
        "--zone-id-filter=ZACME",
        "--policy=sync",
        "--registry=txt",
        "--txt-prefix=_extdns-%{record_type}.",
    ):
        assert flag in args
    assert args[-len(budget.TODAY.args()) :] == budget.TODAY.args()  # no flags chosen: the plain one-minute resync
    flags = budget.Flags(interval=3600, zones_cache=3600, txt_cache=3600, events=True, min_event_sync=5)
    chosen = replace(CONFIG, flags=flags).args()
    assert chosen[-len(flags.args()) :] == flags.args()


def test_the_deployment_runs_the_config_with_the_key_from_its_secret():
    objects = by_kind(manifests(CONFIG, "AKIAEXAMPLE", "s3cret"))
    secret = {k: base64.b64decode(v).decode() for k, v in objects["Secret"]["data"].items()}
    assert secret == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == CONFIG.image and container["args"] == CONFIG.args()
    assert container["envFrom"] == [{"secretRef": {"name": objects["Secret"]["metadata"]["name"]}}]
    assert "s3cret" not in str(objects["Deployment"])  # the key is in the Secret only
    assert "limits" not in container["resources"]
    limited = by_kind(manifests(replace(CONFIG, memory_limit="512Mi"), "A", "s"))
    (container,) = limited["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"] == {"memory": "512Mi"}


def test_a_new_key_changes_the_pod_template_so_pods_are_replaced():
    old = by_kind(manifests(CONFIG, "AKIAOLD", "one"))["Deployment"]
    new = by_kind(manifests(CONFIG, "AKIANEW", "two"))["Deployment"]
    assert externaldns.pod_checksum(old) == externaldns.credentials_checksum("AKIAOLD", "one")
    assert externaldns.pod_checksum(old) != externaldns.pod_checksum(new)


def test_everything_is_labelled_ours_and_the_pod_runs_restricted():
    objects = manifests(CONFIG, "A", "s")
    assert all(obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "orgdns" for obj in objects)
    assert {obj["kind"] for obj in objects} == {"Secret", "Service", "Deployment"}  # no namespace, account or RBAC
    pod = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    assert (
        pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["serviceAccountName"] == externaldns.EXTERNALDNS_SERVICE_ACCOUNT


def test_the_metrics_service_is_the_one_the_role_lets_orgdns_proxy_to():
    service = by_kind(manifests(CONFIG, "A", "s"))["Service"]
    (port,) = service["spec"]["ports"]
    assert (service["metadata"]["name"], port["name"], port["port"]) == ("external-dns", "http", 7979)
    assert f"http:{service['metadata']['name']}:{port['port']}" == externaldns.METRICS_PROXY_NAME
    (proxy,) = [rule for rule in externaldns.orgdns_rules() if rule["resources"] == ["services/proxy"]]
    assert proxy == {
        "apiGroups": [""],
        "resources": ["services/proxy"],
        "resourceNames": ["http:external-dns:7979"],
        "verbs": ["get"],
    }


def test_removal_takes_away_exactly_what_was_applied_workload_first():
    applied = {
        (obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")) for obj in manifests(CONFIG, "A", "s")
    }
    order = removal_order("external-dns")
    assert set(order) == applied and len(order) == len(applied)
    assert order[0][0] == "Deployment"


def pod(name, checksum, ready=True, deleting=False):
    metadata = {"name": name, "annotations": {externaldns.CHECKSUM_ANNOTATION: checksum}}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    return {"metadata": metadata, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_a_key_rollout_is_done_when_every_live_pod_runs_the_new_key_and_one_is_ready():
    assert key_rollout_problem([pod("a", "new")], "new") == ""
    assert key_rollout_problem([pod("a", "new"), pod("b", "old", deleting=True)], "new") == ""
    assert key_rollout_problem([pod("a", "new"), pod("b", "old")], "new") == "pods b still run with an earlier key"
    assert key_rollout_problem([pod("a", "new", ready=False)], "new") == "no ExternalDNS pod is ready with the new key"
    assert key_rollout_problem([], "new") == "no ExternalDNS pod is ready with the new key"
