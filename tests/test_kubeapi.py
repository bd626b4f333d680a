"""Tests for devstack.kubeapi, driven by the official kubernetes client, raw HTTP and kubectl."""

import base64
import http.client
import json
import shutil
import signal
import ssl
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack.kubeapi import KubeAPIServer, json_patch, merge_patch, parse_label_selector

TOKEN = "s3cret-token"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server():
    server = KubeAPIServer(token=TOKEN, tls=True).start()
    yield server
    server.stop()


@pytest.fixture
def ca_file(server, tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text(server.ca_pem)
    return path


def make_api_client(url, ca_file=None, token=TOKEN):
    configuration = client.Configuration(host=url, api_key={"authorization": f"Bearer {token}"})
    configuration.ssl_ca_cert = str(ca_file) if ca_file else None
    configuration.retries = False
    return client.ApiClient(configuration)


@pytest.fixture
def api_client(server, ca_file):
    with make_api_client(server.url, ca_file) as api_client:
        yield api_client


@pytest.fixture
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client):
    return client.AppsV1Api(api_client)


@pytest.fixture
def rbac(api_client):
    return client.RbacAuthorizationV1Api(api_client)


@pytest.fixture
def namespace(core):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="external-dns")))
    return "external-dns"


def raw_request(server, method, path, body=None, content_type="application/json", token=TOKEN):
    """Send one request with http.client and return (status, decoded JSON body)."""
    url = urlsplit(server.url)
    context = ssl.create_default_context(cadata=server.ca_pem)
    connection = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=10)
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def error_body(excinfo) -> dict:
    return json.loads(excinfo.value.body)


def deployment(name, replicas=None, image="registry.k8s.io/external-dns/external-dns:v0.15.0"):
    spec = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": name, "image": image}]}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


# --- discovery ---------------------------------------------------------------

def test_discovery_documents(api_client, core, apps):
    assert client.VersionApi(api_client).get_code().major == "1"
    assert client.CoreApi(api_client).get_api_versions().versions == ["v1"]
    groups = {group.name: group.preferred_version.group_version
              for group in client.ApisApi(api_client).get_api_versions().groups}
    assert groups == {"apps": "apps/v1", "rbac.authorization.k8s.io": "rbac.authorization.k8s.io/v1"}

    core_resources = {resource.name: resource for resource in core.get_api_resources().resources}
    assert set(core_resources) == {"namespaces", "secrets", "serviceaccounts", "services", "configmaps", "pods"}
    assert core_resources["namespaces"].namespaced is False
    assert core_resources["namespaces"].short_names == ["ns"]
    assert core_resources["secrets"].namespaced is True
    assert core_resources["secrets"].singular_name == "secret"
    assert "patch" in core_resources["secrets"].verbs

    [deployments] = apps.get_api_resources().resources
    assert (deployments.kind, deployments.namespaced, deployments.short_names) == ("Deployment", True, ["deploy"])
    rbac_resources = client.RbacAuthorizationV1Api(api_client).get_api_resources().resources
    assert {(r.name, r.namespaced) for r in rbac_resources} == {("clusterroles", False),
                                                                ("clusterrolebindings", False)}


def test_openapi_and_unknown_paths_are_not_found(server):
    for path in ("/openapi/v2", "/api/v1/events", "/apis/apps/v1/namespaces/x/secrets", "/api/v1/secrets/name"):
        status, body = raw_request(server, "GET", path)
        assert (status, body["reason"]) == (404, "NotFound"), path


# --- namespaces ----------------------------------------------------------------

def test_namespace_lifecycle(core, server):
    created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team-a")))
    assert created.kind == "Namespace" and created.api_version == "v1"
    assert created.metadata.uid and created.metadata.creation_timestamp is not None
    assert created.metadata.labels == {"kubernetes.io/metadata.name": "team-a"}
    assert created.status.phase == "Active"

    listing = core.list_namespace()
    assert [ns.metadata.name for ns in listing.items] == ["team-a"]
    assert int(listing.metadata.resource_version) >= int(created.metadata.resource_version)

    patched = core.patch_namespace("team-a", {"metadata": {"labels": {"owner": "dns"}}})
    assert patched.metadata.labels["owner"] == "dns"
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    assert patched.metadata.uid == created.metadata.uid

    deleted = core.delete_namespace("team-a")  # like a real server: the namespace itself, as a plain dict
    assert (deleted["kind"], deleted["metadata"]["uid"]) == ("Namespace", created.metadata.uid)
    assert server.objects("namespaces") == []


def test_deleting_a_namespace_deletes_its_contents(core, apps, server, namespace):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="other")))
    for ns in (namespace, "other"):
        core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="token")))
    apps.create_namespaced_deployment(namespace, deployment("external-dns"))
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="external-dns")))

    core.delete_namespace(namespace)

    assert server.objects("deployments") == []
    assert server.objects("serviceaccounts") == []
    assert [secret["metadata"]["namespace"] for secret in server.objects("secrets")] == ["other"]
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_secret("token", namespace)
    assert excinfo.value.status == 404


# --- secrets -------------------------------------------------------------------

def test_secret_string_data_is_stored_as_base64_data(core, server, namespace):
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="credentials"),
                             data={"user": base64.b64encode(b"admin").decode()},
                             string_data={"password": "hunter2"})
    created = core.create_namespaced_secret(namespace, secret)

    assert created.type == "Opaque"
    assert created.string_data is None
    assert base64.b64decode(created.data["password"]) == b"hunter2"
    assert base64.b64decode(created.data["user"]) == b"admin"
    [stored] = server.objects("secrets", namespace)
    assert "stringData" not in stored and stored["kind"] == "Secret" and stored["apiVersion"] == "v1"

    patched = core.patch_namespaced_secret("credentials", namespace, {"stringData": {"password": "changed"}})
    assert base64.b64decode(patched.data["password"]) == b"changed"
    assert base64.b64decode(patched.data["user"]) == b"admin"


def test_secret_type_is_kept(core, namespace):
    created = core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="tls"), type="kubernetes.io/tls",
        string_data={"tls.crt": "cert", "tls.key": "key"}))
    assert created.type == "kubernetes.io/tls"
    assert core.read_namespaced_secret("tls", namespace).type == "kubernetes.io/tls"


def test_cluster_wide_list_of_namespaced_resource(core, namespace):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="other")))
    for ns in (namespace, "other"):
        core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name=f"in-{ns}")))
    listing = core.list_secret_for_all_namespaces()
    assert listing.kind == "SecretList" and listing.api_version == "v1"
    assert [(s.metadata.namespace, s.metadata.name) for s in listing.items] == [
        ("external-dns", "in-external-dns"), ("other", "in-other")]
    assert [s.metadata.name for s in core.list_namespaced_secret("other").items] == ["in-other"]


# --- selectors -----------------------------------------------------------------

@pytest.mark.parametrize(("selector", "expected"), [
    ("app=dns", ["a", "b"]),
    ("app==dns", ["a", "b"]),
    ("app!=dns", ["c", "d"]),
    ("tier in (web, db)", ["a", "c"]),
    ("tier notin (web)", ["b", "c", "d"]),
    ("tier", ["a", "b", "c"]),
    ("!tier", ["d"]),
    ("app=dns,tier in (web,db)", ["a"]),
    ("app=dns,!tier", []),
    ("", ["a", "b", "c", "d"]),
])
def test_label_selectors(core, namespace, selector, expected):
    labels = {"a": {"app": "dns", "tier": "web"}, "b": {"app": "dns", "tier": "cache"},
              "c": {"app": "other", "tier": "db"}, "d": {}}
    for name, secret_labels in labels.items():
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels=secret_labels)))
    listing = core.list_namespaced_secret(namespace, label_selector=selector)
    assert [secret.metadata.name for secret in listing.items] == expected


def test_malformed_label_selector_is_a_bad_request(core, namespace):
    with pytest.raises(ApiException) as excinfo:
        core.list_namespaced_secret(namespace, label_selector="app in dns")
    assert excinfo.value.status == 400
    assert error_body(excinfo)["reason"] == "BadRequest"


def test_parse_label_selector_ignores_commas_inside_sets():
    matches = parse_label_selector("env in (prod,staging),team")
    assert matches({"env": "staging", "team": "x"})
    assert not matches({"env": "dev", "team": "x"})
    assert not matches({"env": "prod"})


def test_field_selectors(core, namespace):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="other")))
    for ns in (namespace, "other"):
        for name in ("one", "two"):
            core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))
    by_name = core.list_config_map_for_all_namespaces(field_selector="metadata.name=one")
    assert [(cm.metadata.namespace, cm.metadata.name) for cm in by_name.items] == [
        ("external-dns", "one"), ("other", "one")]
    combined = core.list_config_map_for_all_namespaces(
        field_selector="metadata.namespace=other,metadata.name!=one")
    assert [(cm.metadata.namespace, cm.metadata.name) for cm in combined.items] == [("other", "two")]
    with pytest.raises(ApiException) as excinfo:
        core.list_config_map_for_all_namespaces(field_selector="status.phase=Running")
    assert excinfo.value.status == 400


# --- create / replace errors ---------------------------------------------------------

def test_create_existing_object_is_already_exists(core, namespace):
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="dup"))
    core.create_namespaced_secret(namespace, secret)
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_secret(namespace, secret)
    assert excinfo.value.status == 409
    body = error_body(excinfo)
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == 409
    assert body["reason"] == "AlreadyExists"
    assert body["details"] == {"name": "dup", "kind": "secrets"}


def test_create_in_missing_namespace_is_not_found(core):
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_config_map("nowhere", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert excinfo.value.status == 404
    assert error_body(excinfo)["details"] == {"name": "nowhere", "kind": "namespaces"}


def test_get_missing_object_is_not_found(core, apps, namespace):
    with pytest.raises(ApiException) as excinfo:
        apps.read_namespaced_deployment("missing", namespace)
    body = error_body(excinfo)
    assert (excinfo.value.status, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'deployments "missing" not found'
    assert body["details"] == {"name": "missing", "kind": "deployments", "group": "apps"}


@pytest.mark.parametrize("metadata", [{}, {"name": "Not_Valid"}, {"name": "-leading-dash"}])
def test_create_with_missing_or_invalid_name_is_invalid(core, namespace, metadata):
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_secret(namespace, {"metadata": metadata})
    assert excinfo.value.status == 422
    assert error_body(excinfo)["reason"] == "Invalid"


def test_namespace_names_must_be_dns_labels(core):
    with pytest.raises(ApiException) as excinfo:
        core.create_namespace({"metadata": {"name": "dotted.name"}})
    assert excinfo.value.status == 422


def test_generate_name(core, namespace):
    created = core.create_namespaced_secret(namespace, {"metadata": {"generateName": "token-"}})
    assert created.metadata.name.startswith("token-")
    assert len(created.metadata.name) == len("token-") + 5
    assert core.read_namespaced_secret(created.metadata.name, namespace).metadata.uid == created.metadata.uid


def test_namespace_in_body_must_match_url(core, namespace):
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_secret(namespace, {"metadata": {"name": "x", "namespace": "elsewhere"}})
    assert excinfo.value.status == 400


def test_replace_checks_resource_version(core, namespace):
    created = core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings"), data={"a": "1"}))
    created.data = {"a": "2"}
    replaced = core.replace_namespaced_config_map("settings", namespace, created)
    assert replaced.data == {"a": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    assert replaced.metadata.creation_timestamp == created.metadata.creation_timestamp

    created.data = {"a": "stale"}
    with pytest.raises(ApiException) as excinfo:
        core.replace_namespaced_config_map("settings", namespace, created)
    assert excinfo.value.status == 409
    assert error_body(excinfo)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("settings", namespace).data == {"a": "2"}

    unconditional = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"a": "3"})
    assert core.replace_namespaced_config_map("settings", namespace, unconditional).data == {"a": "3"}


def test_replace_missing_object_is_not_found(core, namespace):
    with pytest.raises(ApiException) as excinfo:
        core.replace_namespaced_config_map("missing", namespace, {"metadata": {"name": "missing"}})
    assert excinfo.value.status == 404


def test_delete_returns_success_status_then_not_found(core, server, namespace):
    created = core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm")))
    status = core.delete_namespaced_config_map("cm", namespace)  # the v37 client returns a plain dict here
    assert (status["kind"], status["status"]) == ("Status", "Success")
    assert status["details"] == {"name": "cm", "kind": "configmaps", "uid": created.metadata.uid}
    assert server.objects("configmaps") == []
    with pytest.raises(ApiException) as excinfo:
        core.delete_namespaced_config_map("cm", namespace)
    assert excinfo.value.status == 404


def test_delete_returns_the_object_for_services(core, server, namespace):
    core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"), spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])))
    deleted = core.delete_namespaced_service("web", namespace)
    assert isinstance(deleted, client.V1Service)
    assert deleted.spec.ports[0].port == 80
    assert server.objects("services") == []


def test_pods_are_only_stored(core, server, namespace):
    pod = {"metadata": {"name": "runner"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    core.create_namespaced_pod(namespace, pod)
    assert [p["metadata"]["name"] for p in server.objects("pods", namespace)] == ["runner"]
    assert core.list_namespaced_pod(namespace).items[0].spec.containers[0].image == "busybox"


# --- patches -------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["application/merge-patch+json",
                                          "application/strategic-merge-patch+json"])
def test_merge_patches(core, namespace, content_type):
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cm", labels={"keep": "1", "drop": "1"}), data={"a": "1"}))
    patched = core.patch_namespaced_config_map(
        "cm", namespace, {"metadata": {"labels": {"drop": None, "new": "1"}}, "data": {"b": "2"}},
        _content_type=content_type)
    assert patched.metadata.labels == {"keep": "1", "new": "1"}
    assert patched.data == {"a": "1", "b": "2"}


def test_json_patch(core, namespace):
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cm", labels={"a/b": "x"}), data={"one": "1", "two": "2"}))
    patched = core.patch_namespaced_config_map("cm", namespace, [
        {"op": "test", "path": "/data/one", "value": "1"},
        {"op": "add", "path": "/data/three", "value": "3"},
        {"op": "replace", "path": "/data/one", "value": "uno"},
        {"op": "remove", "path": "/data/two"},
        {"op": "remove", "path": "/metadata/labels/a~1b"},
    ])
    assert patched.data == {"one": "uno", "three": "3"}
    assert not patched.metadata.labels


@pytest.mark.parametrize("operation", [
    {"op": "test", "path": "/data/one", "value": "wrong"},
    {"op": "remove", "path": "/data/missing"},
    {"op": "replace", "path": "/nope/deeper", "value": 1},
])
def test_failing_json_patch_is_invalid_and_changes_nothing(core, namespace, operation):
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cm"), data={"one": "1"}))
    with pytest.raises(ApiException) as excinfo:
        core.patch_namespaced_config_map("cm", namespace, [{"op": "add", "path": "/data/x", "value": "y"},
                                                           operation])
    assert excinfo.value.status == 422
    assert core.read_namespaced_config_map("cm", namespace).data == {"one": "1"}


def test_json_patch_on_lists():
    document = {"items": ["a", "b"]}
    patched = json_patch(document, [{"op": "add", "path": "/items/-", "value": "c"},
                                    {"op": "add", "path": "/items/0", "value": "z"},
                                    {"op": "move", "from": "/items/1", "path": "/first"},
                                    {"op": "copy", "from": "/first", "path": "/items/-"}])
    assert patched == {"items": ["z", "b", "c", "a"], "first": "a"}
    assert document == {"items": ["a", "b"]}


def test_merge_patch_follows_rfc_7386():
    assert merge_patch({"a": "b", "c": {"d": "e", "f": "g"}}, {"a": "z", "c": {"f": None}}) == {
        "a": "z", "c": {"d": "e"}}
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert merge_patch({"a": "b"}, ["c"]) == ["c"]


def test_server_side_apply_creates_then_merges(server, apps, namespace):
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/external-dns?fieldManager=orgdns"
    manifest = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: external-dns\n  labels: {team: dns}\n"
        "spec:\n  replicas: 2\n  selector: {matchLabels: {app: external-dns}}\n"
        "  template:\n    metadata: {labels: {app: external-dns}}\n"
        "    spec: {containers: [{name: external-dns, image: external-dns:v1}]}\n")
    status, created = raw_request(server, "PATCH", path, manifest, "application/apply-patch+yaml")
    assert status == 201
    assert created["metadata"]["generation"] == 1 and created["status"]["replicas"] == 2

    update = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "external-dns"},
              "spec": {"replicas": 3}}
    status, updated = raw_request(server, "PATCH", path, update, "application/apply-patch+yaml")
    assert status == 200
    assert updated["metadata"]["labels"] == {"team": "dns"}
    assert updated["spec"]["replicas"] == 3
    assert updated["metadata"]["generation"] == 2
    assert apps.read_namespaced_deployment("external-dns", namespace).status.ready_replicas == 3


def test_apply_patch_through_python_client(core, namespace):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "v"}}
    created = core.patch_namespaced_config_map("applied", namespace, body, field_manager="orgdns",
                                               _content_type="application/apply-patch+yaml")
    assert created.data == {"k": "v"}
    assert core.read_namespaced_config_map("applied", namespace).metadata.uid == created.metadata.uid


def test_unsupported_patch_type(server, namespace):
    raw_request(server, "POST", f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "cm"}})
    status, body = raw_request(server, "PATCH", f"/api/v1/namespaces/{namespace}/configmaps/cm", "{}",
                               "text/plain")
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")


def test_patch_missing_object_is_not_found(core, namespace):
    with pytest.raises(ApiException) as excinfo:
        core.patch_namespaced_secret("missing", namespace, {"data": {}})
    assert excinfo.value.status == 404


# --- deployments ---------------------------------------------------------------

def test_deployment_generation_and_rollout_status(apps, namespace):
    created = apps.create_namespaced_deployment(namespace, deployment("external-dns", replicas=2))
    assert created.metadata.generation == 1
    assert created.spec.replicas == 2
    status = created.status
    assert status.observed_generation == 1
    assert (status.replicas, status.ready_replicas, status.updated_replicas, status.available_replicas) == (
        2, 2, 2, 2)
    assert {(c.type, c.status) for c in status.conditions} >= {("Available", "True")}

    relabelled = apps.patch_namespaced_deployment("external-dns", namespace,
                                                  {"metadata": {"labels": {"team": "dns"}}})
    assert relabelled.metadata.generation == 1

    image_patch = {"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}}
    restarted = apps.patch_namespaced_deployment("external-dns", namespace, image_patch)
    assert restarted.metadata.generation == 2
    assert restarted.status.observed_generation == 2
    assert apps.read_namespaced_deployment("external-dns", namespace).metadata.generation == 2


def test_deployment_replicas_default_to_one(apps, server, namespace):
    apps.create_namespaced_deployment(namespace, deployment("single"))
    [stored] = server.objects("deployments", namespace)
    assert stored["spec"]["replicas"] == 1
    assert stored["status"]["availableReplicas"] == 1
    assert stored["kind"] == "Deployment" and stored["apiVersion"] == "apps/v1"


# --- rbac ----------------------------------------------------------------------

def test_cluster_roles_and_bindings(rbac, server):
    role = {"metadata": {"name": "orgdns:external-dns"},
            "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}]}
    created = rbac.create_cluster_role(role)
    assert created.metadata.namespace is None
    assert created.rules[0].resources == ["services"]

    binding = {"metadata": {"name": "external-dns-viewer"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "orgdns:external-dns"},
               "subjects": [{"kind": "ServiceAccount", "name": "external-dns", "namespace": "external-dns"}]}
    rbac.create_cluster_role_binding(binding)
    assert [b.role_ref.name for b in rbac.list_cluster_role_binding().items] == ["orgdns:external-dns"]

    patched = rbac.patch_cluster_role("orgdns:external-dns", [
        {"op": "add", "path": "/rules/0/resources/-", "value": "ingresses"}])
    assert patched.rules[0].resources == ["services", "ingresses"]

    binding["subjects"][0]["name"] = "renamed"
    replaced = rbac.replace_cluster_role_binding("external-dns-viewer", binding)
    assert replaced.subjects[0].name == "renamed"

    rbac.delete_cluster_role_binding("external-dns-viewer")
    rbac.delete_cluster_role("orgdns:external-dns")
    assert server.objects("clusterroles") == [] and server.objects("clusterrolebindings") == []


# --- availability, auth and bookkeeping --------------------------------------------

def test_fail_next_then_recover(core, server):
    server.fail_next(2)
    for _ in range(2):
        with pytest.raises(ApiException) as excinfo:
            core.list_namespace()
        assert excinfo.value.status == 503
        assert error_body(excinfo)["reason"] == "ServiceUnavailable"
    assert core.list_namespace().kind == "NamespaceList"


def test_fail_next_with_custom_status(server):
    server.fail_next(1, status=500)
    status, body = raw_request(server, "GET", "/version")
    assert (status, body["reason"], body["code"]) == (500, "InternalError", 500)
    assert raw_request(server, "GET", "/version")[0] == 200


def test_wrong_token_is_unauthorized(server, ca_file):
    with make_api_client(server.url, ca_file, token="wrong") as api_client:
        with pytest.raises(ApiException) as excinfo:
            client.CoreV1Api(api_client).list_namespace()
    assert excinfo.value.status == 401
    assert error_body(excinfo)["reason"] == "Unauthorized"


def test_missing_token_is_unauthorized(server):
    status, body = raw_request(server, "GET", "/api", token=None)
    assert (status, body["kind"], body["reason"]) == (401, "Status", "Unauthorized")


def test_request_log(core, server):
    before = server.request_count
    core.list_namespace(label_selector="a=b")
    with pytest.raises(ApiException):
        core.read_namespace("absent")
    assert server.request_count == before + 2
    assert server.requests[-2:] == [("GET", "/api/v1/namespaces"), ("GET", "/api/v1/namespaces/absent")]


def test_concurrent_writes_get_distinct_resource_versions(core, namespace):
    def create(index):
        return core.create_namespaced_config_map(namespace, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"cm-{index}")))

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(create, range(40)))
    versions = {int(cm.metadata.resource_version) for cm in created}
    assert len(versions) == 40
    assert len(core.list_namespaced_config_map(namespace).items) == 40


def test_non_json_request_bodies_are_unsupported_media_type(server, namespace):
    status, body = raw_request(server, "POST", f"/api/v1/namespaces/{namespace}/secrets", b"k8s\x00...",
                               "application/vnd.kubernetes.protobuf")
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")
    assert server.objects("secrets") == []


def test_watch_is_refused(server):
    status, body = raw_request(server, "GET", "/api/v1/namespaces?watch=true")
    assert (status, body["reason"]) == (405, "MethodNotAllowed")


def test_plain_http_without_token():
    server = KubeAPIServer().start()
    try:
        assert server.url.startswith("http://127.0.0.1:") and server.ca_pem is None
        configuration = client.Configuration(host=server.url)
        with client.ApiClient(configuration) as api_client:
            client.CoreV1Api(api_client).create_namespace({"metadata": {"name": "open"}})
        assert [ns["metadata"]["name"] for ns in server.objects("namespaces")] == ["open"]
    finally:
        server.stop()


# --- TLS -----------------------------------------------------------------------

@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_certificate_verifies_against_the_ca(server, hostname):
    context = ssl.create_default_context(cadata=server.ca_pem)
    connection = http.client.HTTPSConnection(hostname, urlsplit(server.url).port, context=context, timeout=10)
    try:
        connection.request("GET", "/version", headers={"Authorization": f"Bearer {TOKEN}"})
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_certificate_is_rejected_without_the_ca(server, capfd):
    with make_api_client(server.url, ca_file=None) as api_client:
        with pytest.raises(ApiException) as excinfo:
            client.CoreV1Api(api_client).list_namespace()
    assert excinfo.value.status == 0
    assert "CERTIFICATE_VERIFY_FAILED" in excinfo.value.reason
    assert server.request_count == 0
    assert capfd.readouterr().err == ""  # the failed handshake is not logged


# --- kubectl -------------------------------------------------------------------

@pytest.fixture
def kubectl(server, ca_file, tmp_path):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server.url, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "fake", "user": {"token": TOKEN}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }))

    def run(*args, check=True):
        result = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir",
                                 str(tmp_path / "cache"), *args], capture_output=True, text=True, timeout=60)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run


def test_kubectl_get_namespaces(kubectl, namespace):
    output = kubectl("get", "ns").stdout
    assert output.split()[:2] == ["NAME", "AGE"]
    assert namespace in output.split()


def test_kubectl_get_secrets_by_label_as_json(kubectl, core, namespace):
    for name, app in (("wanted", "y"), ("unwanted", "z")):
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels={"app": app}), string_data={"k": "v"}))
    listing = json.loads(kubectl("get", "secrets", "-n", namespace, "-l", "app=y", "-o", "json").stdout)
    assert [item["metadata"]["name"] for item in listing["items"]] == ["wanted"]
    assert listing["items"][0]["data"] == {"k": base64.b64encode(b"v").decode()}


def test_kubectl_describe_and_delete_deployment(kubectl, apps, server, namespace):
    apps.create_namespaced_deployment(namespace, deployment("external-dns", replicas=2))
    description = kubectl("describe", "deployment", "external-dns", "-n", namespace).stdout
    assert "2 desired | 2 updated | 2 total | 2 available | 0 unavailable" in description

    result = kubectl("delete", "deployment", "external-dns", "-n", namespace)
    assert 'deployment.apps "external-dns" deleted' in result.stdout
    assert server.objects("deployments", namespace) == []
    assert ("DELETE", f"/apis/apps/v1/namespaces/{namespace}/deployments/external-dns") in server.requests


def test_kubectl_label_patch_and_rollout_status(kubectl, core, apps, namespace):
    core.create_namespaced_secret(namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="creds")))
    apps.create_namespaced_deployment(namespace, deployment("external-dns"))

    kubectl("label", "secret", "creds", "-n", namespace, "managed-by=orgdns")
    kubectl("patch", "secret", "creds", "-n", namespace, "-p", '{"stringData": {"key": "value"}}')
    secret = core.read_namespaced_secret("creds", namespace)
    assert secret.metadata.labels == {"managed-by": "orgdns"}
    assert base64.b64decode(secret.data["key"]) == b"value"

    kubectl("set", "image", "deployment/external-dns", "external-dns=external-dns:v2", "-n", namespace)
    assert apps.read_namespaced_deployment("external-dns", namespace).metadata.generation == 2
    result = kubectl("rollout", "status", "deployment/external-dns", "-n", namespace, "--timeout=10s")
    assert 'deployment "external-dns" successfully rolled out' in result.stdout


def test_kubectl_missing_object(kubectl, namespace):
    result = kubectl("get", "secret", "absent", "-n", namespace, check=False)
    assert result.returncode != 0
    assert 'secrets "absent" not found' in result.stderr


def test_kubectl_server_side_apply(kubectl, server, namespace, tmp_path):
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {namespace}\n"
                        "data:\n  zone: example.org\n")
    # No OpenAPI documents are served, so kubectl's client-side schema validation has to be off.
    for _ in range(2):
        assert "serverside-applied" in kubectl("apply", "--server-side", "--validate=false",
                                               "-f", str(manifest)).stdout
    [stored] = server.objects("configmaps", namespace)
    assert stored["data"] == {"zone": "example.org"}


# --- command line --------------------------------------------------------------

@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_command_line_server(tmp_path, stop_signal):
    ca_path = tmp_path / "ca.pem"
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.kubeapi", "--port", "0", "--tls", "--token", TOKEN,
         "--ca-file", str(ca_path)], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        word, url = process.stdout.readline().split()
        assert word == "ready" and url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=ca_path)
        connection = http.client.HTTPSConnection("127.0.0.1", urlsplit(url).port, context=context, timeout=10)
        connection.request("GET", "/api/v1/namespaces", headers={"Authorization": f"Bearer {TOKEN}"})
        assert json.loads(connection.getresponse().read())["kind"] == "NamespaceList"
        connection.close()
        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0
        assert process.stderr.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
