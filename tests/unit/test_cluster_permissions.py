"""What orgdns asks of a cluster (its ClusterRole, as docs/policies/orgdns-cluster-role.yaml gives it to operators) and
how a listed RBAC rule is read."""

from pathlib import Path

import pytest
import yaml

from provisioning.clients import externaldns


def test_the_documented_cluster_role_is_the_one_registration_checks():
    documented = Path(__file__).resolve().parents[2] / "docs" / "policies" / "orgdns-cluster-role.yaml"
    assert yaml.safe_load(documented.read_text()) == externaldns.orgdns_cluster_role()


@pytest.mark.parametrize(
    "rule, allowed",
    [
        ({"verbs": ["get", "delete"], "apiGroups": ["apps"], "resources": ["deployments"]}, True),
        ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, True),
        ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"]}, False),
        ({"verbs": ["delete"], "apiGroups": [""], "resources": ["deployments"]}, False),
        ({"verbs": ["delete"], "apiGroups": ["apps"], "resources": ["replicasets"]}, False),
    ],
)
def test_a_listed_rule_grants_a_permission_exactly_when_each_of_its_parts_matches(rule, allowed):
    from provisioning.clients.kube import _grants

    assert _grants(rule, "delete", "apps", "deployments") is allowed
