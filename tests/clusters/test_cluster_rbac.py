"""Least privilege in a tenant's cluster, against the real local control plane: the tenant applies orgdns's bootstrap
manifest, and the token it gives orgdns registers, deploys ExternalDNS, publishes, installs certificates where the
tenant bound orgdns and nowhere else, deregisters — and cannot do anything dangerous, as the API server itself says.
"""

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from provisioning.clients import externaldns
from provisioning.models import Certificate, Cluster, HostedZone
from provisioning.services import backends
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters import externaldns_health
from provisioning.services.clusters.jobs import DeregisterCluster, RegisterCluster
from provisioning.services.credentials.vault_paths import read_connection
from tests.clusters.test_externaldns import a_records
from tests.conftest import run_jobs, wait_until
from tests.factories import register

pytestmark = pytest.mark.django_db(transaction=True)

NS = "external-dns"
OURS = "app.kubernetes.io/managed-by=orgdns"


def stored_token(cluster):
    """The token orgdns keeps in Vault for the cluster."""
    return read_connection(backends.Backends().vault(), cluster).token


def names(objects):
    return sorted(obj["metadata"]["name"] for obj in objects)


def test_a_bootstrap_token_does_the_whole_job_and_nothing_dangerous(personas, cluster_api, aws):
    admin = cluster_api.cluster
    admin.create_load_balancer_service("web", "web.acme.orgdns.test", "203.0.113.10")
    cluster = register(personas.acme, "prod", cluster_api, personas.alice)
    assert cluster.token_excess == "" and not cluster.legacy_rbac
    zone = HostedZone.objects.get(organization=personas.acme)
    wait_until(lambda: a_records(aws, zone.zone_id) == {"web.acme.orgdns.test.": "203.0.113.10"}, timeout=60)
    # What orgdns made: its Secret, Service and Deployment, nothing else; the rest is the tenant's bootstrap.
    assert [names(cluster_api.objects(p, NS, OURS)) for p in ("secrets", "services", "deployments")] == [
        ["external-dns-aws"],
        ["external-dns"],
        ["external-dns"],
    ]
    assert cluster_api.objects("clusterroles", selector=OURS) == []

    # Certificates: into a namespace where the tenant bound orgdns-certificates, refused elsewhere.
    for namespace in ("web", "shop"):
        admin.api(
            "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
    admin.allow_certificates("web")
    certificate, _ = certificates.issue_certificate(
        personas.acme, ["www.acme.orgdns.test"], [(cluster, "web", "www-tls")], personas.alice
    )
    run_jobs()
    certificate.refresh_from_db()
    assert certificate.state == Certificate.State.ACTIVE, certificate.message
    assert names(cluster_api.objects("secrets", "web")) == ["www-tls"]
    with pytest.raises(ValidationError) as refused:
        certificates.install_certificate(certificate, cluster, "shop", "www-tls", personas.alice)
    assert (
        "orgdns may not write Secrets in namespace shop of cluster prod" in refused.value.messages[0]
        and "kubectl -n shop create rolebinding orgdns-certificates --clusterrole=orgdns-certificates "
        "--serviceaccount=external-dns:orgdns"
        in refused.value.messages[0]
    )
    assert cluster_api.objects("secrets", "shop") == []
    cluster.refresh_from_db()
    assert cluster.certificate_namespaces == ["web"]

    # What the stored token may do, as the API server says.
    token = stored_token(cluster)
    assert token == admin.orgdns_token

    def may(*args, **kwargs):
        return admin.may(token, *args, **kwargs)

    assert may("patch", "deployments", "apps", NS, "external-dns")
    assert may("create", "secrets", namespace=NS, name="external-dns-aws")  # server-side apply: create by name
    assert may("get", "services", namespace=NS, name="http:external-dns:7979", subresource="proxy")
    assert not may("list", "secrets")
    assert not may("get", "secrets", namespace="kube-system", name="anything")
    assert not may("create", "secrets", namespace=NS, name="another")
    assert not may("create", "pods", namespace="kube-system")
    assert not may("create", "clusterrolebindings", "rbac.authorization.k8s.io")
    assert not may("create", "serviceaccounts", namespace="kube-system", name="default", subresource="token")
    assert not may("delete", "namespaces", name="kube-system")
    assert not may("delete", "namespaces", name=NS)
    assert not may("get", "pods", namespace=NS, name="any", subresource="proxy")
    assert not may("get", "services", namespace=NS, name="http:other:80", subresource="proxy")
    assert not may("get", "services", namespace=NS, name="external-dns:7979", subresource="proxy")
    assert not may("get", "services", namespace="default", name="https:kubernetes:443", subresource="proxy")
    assert not may("create", "deployments", "apps", NS, "another")

    # Deregistration removes what orgdns created; the bootstrap stays the tenant's.
    DeregisterCluster.enqueue(cluster)
    run_jobs()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.DEREGISTERED, cluster.message
    assert [cluster_api.objects(p, NS, OURS) for p in ("secrets", "services", "deployments")] == [[], [], []]
    assert cluster_api.objects("secrets", "web") == []
    assert admin.api("GET", f"/api/v1/namespaces/{NS}") is not None
    assert admin.api("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/orgdns-external-dns") is not None
    assert cluster_api.runner.pods == {}


def test_the_health_check_reads_metrics_through_the_pinned_service_proxy_rbac_allows(personas, cluster_api):
    cluster = register(personas.acme, "prod", cluster_api)
    externaldns_health.check(cluster)
    cluster.refresh_from_db()
    assert cluster.externaldns_health == Cluster.Health.OK, cluster.externaldns_problem
    # RBAC let the request through (the name form matches the Role); whether the proxy reaches the pod is the
    # devstack's network (pods with addresses of their own), not a permission.
    assert "forbidden" not in cluster.externaldns_metrics_error
    assert cluster.setup_drift == "" and cluster.setup_checked_at is not None


def test_an_admin_token_registers_with_a_warning_naming_the_excess(personas, cluster_api, client):
    cluster, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.admin_connection, personas.alice)
    assert "this token can read every Secret of the cluster" in cluster.token_excess
    assert "it can run pods in kube-system" in cluster.token_excess
    assert "it can grant itself anything" in cluster.token_excess
    run_jobs()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY, cluster.message
    client.force_login(personas.alice)
    page = client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()
    assert "can do more than orgdns needs" in page and "this token can read every Secret of the cluster" in page
    answer = client.get(f"/api/v1/organizations/acme/clusters/{cluster.pk}")  # the session authenticates the API too
    if answer.status_code == 200:
        assert "this token can read every Secret of the cluster" in answer.json()["setup"]["token_excess"]


def test_a_token_lacking_one_grant_is_refused_naming_it(personas, cluster_api):
    rules = [rule for rule in externaldns.orgdns_rules() if rule["resources"] != ["services"]]
    cluster_api.set_permissions(rules)
    with pytest.raises(ValidationError) as refused:
        clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    message = refused.value.messages[0]
    assert "get services external-dns in namespace external-dns" in message
    assert "patch services external-dns in namespace external-dns" in message
    assert "kubectl apply -f orgdns-bootstrap.yaml" in message
    assert not Cluster.objects.exists()


def test_drift_of_the_tenants_part_is_found_and_shown(personas, cluster_api, client):
    cluster = register(personas.acme, "prod", cluster_api)
    admin = cluster_api.cluster
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    role = admin.api("GET", f"{rbac}/clusterroles/orgdns-external-dns")
    role["rules"] = [rule for rule in role["rules"] if rule["apiGroups"] != ["networking.k8s.io"]]
    admin.api("PUT", f"{rbac}/clusterroles/orgdns-external-dns", role)
    admin.api("DELETE", f"{rbac}/clusterrolebindings/orgdns-external-dns")
    externaldns_health.check(cluster)
    cluster.refresh_from_db()
    drift = cluster.setup_drift.splitlines()
    assert "ClusterRoleBinding orgdns-external-dns is gone" in drift
    assert any(
        line.startswith("ClusterRole orgdns-external-dns no longer grants ExternalDNS get ingresses.networking.k8s.io")
        for line in drift
    ), drift
    client.force_login(personas.alice)
    page = client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()
    assert "drifted from the bootstrap" in page and "ClusterRoleBinding orgdns-external-dns is gone" in page

    admin.apply_bootstrap()  # the tenant applies it again
    externaldns_health.check(cluster)
    cluster.refresh_from_db()
    assert cluster.setup_drift == ""


def test_provisioning_without_externaldns_namespace_fails_saying_to_apply_the_bootstrap(personas, cluster_api):
    cluster = register(personas.acme, "prod", cluster_api)
    cluster_api.cluster.api("DELETE", f"/api/v1/namespaces/{NS}")
    wait_until(lambda: cluster_api.cluster.api("GET", f"/api/v1/namespaces/{NS}") is None, timeout=90)
    RegisterCluster.enqueue_again(cluster)
    run_jobs()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.ERROR
    # orgdns's ServiceAccount went with the namespace, and its token with it.
    assert "refused our token" in cluster.message and "apply orgdns's bootstrap manifest" in cluster.message


def test_a_cluster_registered_before_the_bootstrap_keeps_working_and_moves_with_a_new_token(
    personas, cluster_api, client
):
    # Registered before: its token could do anything (here the admin's), orgdns made no metrics Service.
    cluster = register(personas.acme, "prod", cluster_api)
    Cluster.objects.filter(pk=cluster.pk).update(legacy_rbac=True)
    cluster_api.cluster.api("DELETE", f"/api/v1/namespaces/{NS}/services/external-dns")
    cluster.refresh_from_db()
    RegisterCluster.enqueue_again(cluster)
    run_jobs()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY, cluster.message
    assert cluster_api.objects("services", NS, OURS) == []  # a legacy token may not create Services: none made
    client.force_login(personas.alice)
    page = client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()
    assert 'id="legacy-notice"' in page and "Replace the token" in page and "kind: Role" in page

    # The tenant gives orgdns the bootstrap's token (the same cluster) through the page.
    kubeconfig = yaml.safe_dump(cluster_api.cluster.kubeconfig(cluster_api.token))
    kubeconfig = kubeconfig.replace(cluster_api.cluster.url, cluster_api.url)
    response = client.post(
        reverse("cluster-replace-token", args=["acme", cluster.pk]),
        {"kubeconfig": SimpleUploadedFile("orgdns.kubeconfig", kubeconfig.encode())},
    )
    assert response.status_code == 302
    run_jobs()
    cluster.refresh_from_db()
    assert not cluster.legacy_rbac and cluster.token_excess == ""
    assert cluster.state == Cluster.State.READY, cluster.message
    assert names(cluster_api.objects("services", NS, OURS)) == ["external-dns"]
    assert stored_token(cluster) == cluster_api.token


def test_another_clusters_token_does_not_replace_this_ones(personas, make_cluster_api):
    one, two = make_cluster_api(), make_cluster_api()
    cluster = register(personas.acme, "prod", one)
    with pytest.raises(ValidationError):  # another server URL, or another kube-system
        clusters.replace_token(cluster, two.connection, personas.alice)
    assert stored_token(cluster) == one.token
