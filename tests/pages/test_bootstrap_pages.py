"""The bootstrap manifest on the pages and in the API: shown before registration, downloadable, scoped to the
organization's members."""

import pytest
import yaml
from django.urls import reverse

from provisioning.clients import externaldns
from provisioning.services.people import api_tokens
from tests.factories import cluster_row

pytestmark = pytest.mark.django_db


def test_the_registration_page_shows_the_bootstrap_and_how_to_get_the_token(client, personas):
    client.force_login(personas.alice)
    page = client.get(reverse("cluster-register", args=["acme"])).content.decode()
    assert "kind: Role" in page and "orgdns-bootstrap.yaml" in page
    assert "kubectl -n external-dns get secret orgdns-token" in page
    assert reverse("cluster-bootstrap", args=["acme"]) in page


def test_the_bootstrap_downloads_as_yaml_for_members_only(client, personas):
    url = reverse("cluster-bootstrap", args=["acme"])
    client.force_login(personas.vera)  # a viewer of acme may read it
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("application/yaml")
    assert 'filename="orgdns-bootstrap.yaml"' in response["Content-Disposition"]
    documents = [doc for doc in yaml.safe_load_all(response.content) if doc]
    assert documents == externaldns.bootstrap("external-dns")
    for outsider in (personas.bob, personas.charlie):
        client.force_login(outsider)
        assert client.get(url).status_code == 404


def test_a_registered_clusters_bootstrap_and_its_cleanup_line(client, personas):
    cluster = cluster_row(personas.acme, token_excess="this token can read every Secret of the cluster")
    client.force_login(personas.alice)
    page = client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()
    assert "kubectl delete -f orgdns-bootstrap.yaml" in page
    assert "this token can read every Secret of the cluster" in page
    assert client.get(reverse("registered-cluster-bootstrap", args=["acme", cluster.pk])).status_code == 200
    client.force_login(personas.bob)
    assert client.get(reverse("registered-cluster-bootstrap", args=["acme", cluster.pk])).status_code == 404


def test_the_api_gives_the_bootstrap_to_members_only(client, personas):
    def get(user, path):
        _, raw = api_tokens.create_token(user, "test", 1)
        return client.get(path, headers={"Authorization": f"Bearer {raw}"})

    answer = get(personas.alice, "/api/v1/organizations/acme/clusters/bootstrap")
    assert answer.status_code == 200
    body = answer.json()
    assert [doc for doc in yaml.safe_load_all(body["manifest"]) if doc] == externaldns.bootstrap("external-dns")
    assert body["namespace"] == "external-dns" and body["service_account"] == "orgdns"
    assert "orgdns-token" in body["token_command"] and body["delete_command"].startswith("kubectl delete -f")
    assert get(personas.bob, "/api/v1/organizations/acme/clusters/bootstrap").status_code == 404
    cluster = cluster_row(personas.acme)
    detail = get(personas.alice, f"/api/v1/organizations/acme/clusters/{cluster.pk}").json()
    assert detail["setup"] == {
        "legacy_rbac": False,
        "token_excess": [],
        "drift": [],
        "checked_at": None,
        "certificate_namespaces": [],
    }
    assert get(personas.bob, f"/api/v1/organizations/acme/clusters/{cluster.pk}/bootstrap").status_code == 404
