"""Bad input gets a clear error and changes nothing."""

import socket

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from provisioning.clients.kube import ClusterConnection
from provisioning.models import Cluster, Operation, Organization
from provisioning.rules.validators import max_org_name_length
from provisioning.services.clusters import actions as clusters
from provisioning.services.organizations import actions as organizations
from tests.conftest import vault_tree

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "name,message",
    [
        ("Acme", "is not a DNS label"),
        ("ac_me", "is not a DNS label"),
        ("-acme", "is not a DNS label"),
        ("acme-", "is not a DNS label"),
        ("", "cannot be blank"),
        ("a" * 64, "a DNS label has at most 63"),
    ],
)
def test_bad_organization_names_are_refused(name, message):
    with pytest.raises(ValidationError, match=message):
        organizations.create_organization(name)
    assert not Organization.objects.exists()


def test_organization_name_too_long_for_the_iam_user_name_is_refused():
    limit = max_org_name_length()
    assert limit == 64 - len("orgdns-")
    organizations.create_organization("a" * limit)
    with pytest.raises(ValidationError, match=rf"at most {limit} fit in the zone name .* and the IAM user name"):
        organizations.create_organization("b" * (limit + 1))
    assert Organization.objects.count() == 1


def test_organization_name_too_long_for_the_zone_name_is_refused(settings):
    settings.ORGDNS_BASE_DOMAIN = ".".join(["x" * 50] * 4) + ".example"  # 211 characters
    assert max_org_name_length() == 253 - 211 - 1
    with pytest.raises(ValidationError, match="at most 41 fit"):
        organizations.create_organization("c" * 42)


def test_duplicate_organization_name_is_refused():
    organizations.create_organization("acme")
    with pytest.raises(ValidationError, match="already exists"):
        organizations.create_organization("acme")


def test_nothing_is_kept_when_the_cluster_cannot_be_used(personas, cluster_api, vault, transactional_db):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unreachable = ClusterConnection(server=f"https://127.0.0.1:{closed.getsockname()[1]}", token="t")
        cases = [
            (unreachable, "Cannot use this cluster: no Kubernetes API server answered at"),
            (ClusterConnection(cluster_api.url, "wrong-token", cluster_api.ca_pem), "refused our token"),
            (
                ClusterConnection(cluster_api.url, cluster_api.token),
                "no Kubernetes API server answered at .* with this CA",
            ),
        ]
        for connection, message in cases:
            with pytest.raises(ValidationError, match=message):
                clusters.register_cluster(personas.acme, "prod", connection)
    assert not Cluster.objects.exists() and not Operation.objects.exists()
    assert vault_tree(vault, settings.VAULT_PREFIX) == []


def test_duplicate_cluster_name_is_refused(personas, cluster_api, vault, transactional_db):
    clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    with pytest.raises(ValidationError, match="already has a cluster named 'prod'"):
        clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    assert Cluster.objects.count() == 1
    assert len(vault_tree(vault, settings.VAULT_PREFIX)) == 1


@pytest.mark.parametrize("name", ["Prod", "prod_1", "a" * 41])
def test_bad_cluster_names_are_refused(name, personas, cluster_api, transactional_db):
    with pytest.raises(ValidationError, match="Cluster name"):
        clusters.register_cluster(personas.acme, name, cluster_api.connection)
    assert not Cluster.objects.exists()
