"""The Helm chart (charts/orgdns): linted, its manifests valid for Kubernetes 1.37, installed and upgraded by helm into
a real local cluster whose API server enforces Pod Security "restricted", its alerts on metrics orgdns exports."""

import copy
import re
import secrets
import time

import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from devstack.image import CHART, HelmFailed, helm, render, values_file, workload
from provisioning.services.metrics import counters as metrics
from provisioning.services.metrics import export as metrics_export

EVERYTHING = {
    "ingress": {"enabled": True, "host": "orgdns.example.com", "tls": [{"secretName": "orgdns-tls"}]},
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "allowedHosts": ["orgdns.example.com"],
    "config": {"ORGDNS_BASE_DOMAIN": "orgs.example.com", "VAULT_ADDR": "https://vault.example.com:8200"},
}
KUBERNETES = "1.37.0"
WORKLOADS = ("web", "worker", "scheduler")


def test_helm_lint_passes_with_the_defaults_and_with_everything_on(tmp_path):
    assert "0 chart(s) failed" in helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in helm("lint", "--strict", str(CHART), "-f", str(values_file(EVERYTHING, tmp_path)))


def test_the_rendered_manifests_are_valid_kubernetes_1_37_objects(tmp_path):
    objects = render(EVERYTHING, tmp_path)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "Deployment", "Deployment", "Ingress", "Job", "PodDisruptionBudget"]
        + ["PodDisruptionBudget", "PrometheusRule", "Service", "ServiceAccount", "ServiceMonitor"]
    )
    for obj in objects:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # the Prometheus Operator's kinds: no schema offline (the alerts are checked below)
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)  # raises naming the field that is wrong


def test_no_secret_is_rendered_and_secret_settings_are_refused_as_values(tmp_path):
    objects = render({}, tmp_path)
    assert not [o for o in objects if o["kind"] == "Secret"]
    web = workload(objects, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "orgdns"}} in web["envFrom"]  # the release's name, unless existingSecret says
    named = render({"existingSecret": "orgdns-prod"}, tmp_path)
    job = workload(named, "Job", "migrate")["spec"]["template"]["spec"]["containers"][0]
    assert job["envFrom"] == [{"secretRef": {"name": "orgdns-prod"}}]

    with pytest.raises(HelmFailed, match="SECRET_KEY"):
        render({"config": {"SECRET_KEY": "in-a-configmap"}}, tmp_path)
    with pytest.raises(HelmFailed, match="replicas"):
        render({"worker": {"replicas": "two"}}, tmp_path)
    with pytest.raises(HelmFailed, match="readOnlyRootFilesystem"):
        render({"securityContext": {"readOnlyRootFilesystem": False}}, tmp_path)


def test_every_pod_is_restricted_with_probes_and_the_migrations_run_first(tmp_path):
    objects = render(EVERYTHING, tmp_path)
    for kind, name in [("Deployment", w) for w in WORKLOADS] + [("Job", "migrate")]:
        pod = workload(objects, kind, name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"] == {
            "type": "RuntimeDefault"
        }
        assert container["securityContext"]["readOnlyRootFilesystem"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        assert not pod["automountServiceAccountToken"]
    web = workload(objects, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0]
    assert web["args"] == ["web"]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    migrate = workload(objects, "Job", "migrate")
    assert migrate["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate", "--noinput"]
    assert migrate["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"


@pytest.mark.django_db
def test_the_alerts_use_metrics_orgdns_exports_and_the_prometheusrule_carries_them(tmp_path):
    rules = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    alerts = {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}
    for topic in ("JobsFailing", "ExternalDNSFailing", "CertificateExpiresSoon", "Route53Throttled"):
        assert f"Orgdns{topic}" in alerts
    assert "sweep" in str(rules).lower()

    registry = CollectorRegistry()  # what a scrape answers: the database's gauges and the processes' counts
    registry.register(metrics_export.DatabaseCollector())
    for metric in metrics.COUNTED:
        registry.register(metric)
    exported = set()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        exported |= {family.name + suffix for suffix in suffixes}
    for alert, expr in alerts.items():
        used = set(re.findall(r"\borgdns_[a-z_]+", expr))
        assert used and used <= exported, f"{alert} uses {sorted(used - exported)}, which orgdns does not export"

    (rule,) = [o for o in render(EVERYTHING, tmp_path) if o["kind"] == "PrometheusRule"]
    assert rule["spec"] == rules


@pytest.mark.timeout(600)
def test_helm_installs_and_upgrades_into_a_namespace_that_enforces_pod_security_restricted(cluster_api, tmp_path):
    cluster = cluster_api.cluster
    namespace = f"orgdns-{secrets.token_hex(3)}"
    cluster.api(
        "POST",
        "/api/v1/namespaces",
        {
            "metadata": {
                "name": namespace,
                "labels": {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn")},
            }
        },
    )
    cluster.api(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "orgdns"}, "stringData": {"SECRET_KEY": secrets.token_urlsafe(32)}},
    )
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", cluster.admin_token)
    values = values_file({**EVERYTHING, "metrics": {}, "ingress": {"enabled": True}}, tmp_path)
    install = ["--namespace", namespace, "-f", str(values), "--wait", "--timeout", "3m"]
    helm("install", "orgdns", str(CHART), *install, kubeconfig=kubeconfig)

    def pods(component):
        return cluster.objects("pods", namespace, selector=f"app.kubernetes.io/component={component}")

    assert {w: len(pods(w)) for w in WORKLOADS} == {"web": 2, "worker": 2, "scheduler": 1}
    assert all(p["status"]["phase"] == "Running" for w in WORKLOADS for p in pods(w))
    jobs = cluster.api("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
    assert jobs == []  # the migrations' Job ran (kwok completes its pod) and was removed
    events = cluster.api("GET", f"/api/v1/namespaces/{namespace}/events")["items"]
    assert any(e["involvedObject"]["kind"] == "Job" and e["reason"] == "Completed" for e in events)

    # The API server's admission decides: the web's pod without one of its restrictions is refused.
    objects = yaml.safe_load_all(helm("get", "manifest", "orgdns", "--namespace", namespace, kubeconfig=kubeconfig))
    web = workload([o for o in objects if o], "Deployment", "web")
    pod = {"apiVersion": "v1", "kind": "Pod", **copy.deepcopy(web["spec"]["template"])}
    pod["metadata"]["name"] = "web-without-allowprivilegeescalation"
    del pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"]
    with pytest.raises(RuntimeError, match="violates PodSecurity"):
        cluster.api("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", pod)

    # An upgrade that changes a setting migrates again, then rolls every workload's pods.
    before = {p["metadata"]["name"] for w in WORKLOADS for p in pods(w)}
    upgrade = [*install, "--set", "config.ORGDNS_BASE_DOMAIN=orgs2.example.com"]
    helm("upgrade", "orgdns", str(CHART), *upgrade, kubeconfig=kubeconfig)
    deadline = time.monotonic() + 90
    while {p["metadata"]["name"] for w in WORKLOADS for p in pods(w)} & before:
        assert time.monotonic() < deadline, "the old pods stayed"
        time.sleep(1)
    events = cluster.api("GET", f"/api/v1/namespaces/{namespace}/events")["items"]
    assert sum(e["involvedObject"]["kind"] == "Job" and e["reason"] == "Completed" for e in events) == 2
    (config,) = [c for c in cluster.objects("configmaps", namespace) if c["metadata"]["name"] == "orgdns"]
    assert config["data"]["ORGDNS_BASE_DOMAIN"] == "orgs2.example.com"
