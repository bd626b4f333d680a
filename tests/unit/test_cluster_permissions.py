"""What orgdns asks of a cluster: the bootstrap manifest (as docs/least-privilege-clusters.md shows it), and the
requests registration checks, which the manifest's rules grant and nothing more cluster-wide."""

from pathlib import Path

import yaml

from provisioning.clients import externaldns

NAMESPACE = "external-dns"


def test_the_bootstrap_is_one_yaml_stream_kubectl_can_apply_and_says_how_to_get_the_token():
    text = externaldns.bootstrap_yaml(NAMESPACE, "organization acme")
    documents = [doc for doc in yaml.safe_load_all(text) if doc]
    assert documents == externaldns.bootstrap(NAMESPACE)
    assert "# organization acme" in text
    assert externaldns.token_command(NAMESPACE) in text
    assert "kubectl delete -f orgdns-bootstrap.yaml" in text
    kinds = [(doc["kind"], doc["metadata"]["name"]) for doc in documents]
    assert kinds == [
        ("Namespace", NAMESPACE),
        ("ServiceAccount", "external-dns"),
        ("ClusterRole", "orgdns-external-dns"),
        ("ClusterRoleBinding", "orgdns-external-dns"),
        ("ServiceAccount", "orgdns"),
        ("Role", "orgdns"),
        ("RoleBinding", "orgdns"),
        ("ClusterRole", "orgdns-checks"),
        ("ClusterRoleBinding", "orgdns-checks"),
        ("ClusterRole", "orgdns-certificates"),
        ("Secret", "orgdns-token"),
    ]
    (token,) = [doc for doc in documents if doc["kind"] == "Secret"]
    assert token["type"] == "kubernetes.io/service-account-token"


def test_orgdns_may_write_only_named_objects_and_read_cluster_wide_only_named_ones():
    documents = externaldns.bootstrap(NAMESPACE)
    orgdns_roles = [
        doc for doc in documents if doc["metadata"]["name"] in ("orgdns", "orgdns-checks") and "rules" in doc
    ]
    for role in orgdns_roles:
        for rule in role["rules"]:
            writes = set(rule["verbs"]) - {"get", "list", "watch"}
            if writes or role["kind"] == "ClusterRole":
                assert rule.get("resourceNames"), rule  # every write, and every cluster-wide read, names its objects
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    (checks,) = [
        doc for doc in documents if doc["metadata"]["name"] == "orgdns-checks" and doc["kind"] == "ClusterRole"
    ]
    assert {verb for rule in checks["rules"] for verb in rule["verbs"]} == {"get"}


def test_every_request_registration_checks_is_granted_by_the_bootstrap():
    rules = {
        "": [
            r
            for doc in externaldns.bootstrap(NAMESPACE)
            if doc["metadata"]["name"] == "orgdns-checks" and "rules" in doc
            for r in doc["rules"]
        ],
        NAMESPACE: externaldns.orgdns_rules(),
    }

    def granted(access):
        resource = f"{access.resource}/{access.subresource}" if access.subresource else access.resource
        scope = rules[""] if not access.namespace or access.resource == "namespaces" else rules[access.namespace]
        return any(
            access.verb in rule["verbs"]
            and access.group in rule["apiGroups"]
            and resource in rule["resources"]
            and (not rule.get("resourceNames") or access.name in rule["resourceNames"])
            for rule in scope
        )

    assert all(granted(access) for access in externaldns.required_access(NAMESPACE))


def test_the_docs_show_the_bootstrap_orgdns_generates():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "least-privilege-clusters.md").read_text()
    (block,) = [b.split("```")[0] for b in docs.split("```yaml\n")[1:] if "kind: Role\n" in b.split("```")[0]]
    assert [doc for doc in yaml.safe_load_all(block) if doc] == externaldns.bootstrap(NAMESPACE)
