"""Registering a cluster through the API ends as through the form: the same states, audit trail and Vault content."""

import base64

import pytest
import yaml
from django.urls import reverse

from provisioning.models import AuditEvent, Cluster, Operation
from provisioning.services.backends import vault_root
from provisioning.services.people import api_tokens
from tests.conftest import run_jobs, vault_tree

pytestmark = pytest.mark.django_db(transaction=True)


def register_with_the_form(client, user, org, name, api):
    client.force_login(user)
    form = {"name": name, "api_server": api.url, "ca_pem": api.ca_pem, "token": api.token}
    response = client.post(reverse("cluster-register", args=[org]), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    client.logout()
    run_jobs()
    return Cluster.objects.get(organization__name=org, name=name)


def register_with_the_api(client, user, org, name, body):
    _, raw = api_tokens.create_token(user, "ci", 1)
    headers = {"Authorization": f"Bearer {raw}", "X-Request-ID": f"ci-{name}"}
    response = client.post(
        f"/api/v1/organizations/{org}/clusters",
        {"name": name, **body},
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 202, response.content
    operation_url = response["Location"]
    assert client.get(operation_url, headers=headers).json()["state"] == "queued"
    run_jobs()
    followed = client.get(operation_url, headers=headers).json()
    assert followed["finished"] and followed["state"] == "succeeded", followed
    return Cluster.objects.get(pk=response.json()["cluster"]["id"])


def connection_of(api):
    return {"api_server": api.url, "ca_pem": api.ca_pem, "token": api.token}


def kubeconfig_of(api):
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "ci",
            "contexts": [{"name": "ci", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [
                {
                    "name": "c",
                    "cluster": {
                        "server": api.url,
                        "certificate-authority-data": base64.b64encode(api.ca_pem.encode()).decode(),
                    },
                }
            ],
            "users": [{"name": "u", "user": {"token": api.token}}],
        }
    )


def outcome(cluster, vault):
    """What a registration leaves: its states, its audit trail (by source) and the organization's Vault secrets."""
    prefix = f"{vault_root()}/orgs/{cluster.organization.name}"
    secrets = {}
    for path in vault_tree(vault, prefix):
        data = vault.secrets.kv.v2.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
        relative = path.removeprefix(prefix).replace(cluster.owner_id, "<owner-id>")
        secrets[relative] = sorted(data["data"]["data"])
    events = AuditEvent.objects.filter(organization=cluster.organization).order_by("id")
    operation = cluster.operations.get()
    return {
        "cluster": cluster.state,
        "operation": operation.state,
        "events": [
            (e.action, e.source, e.outcome, e.object_type, e.request_id == operation.request_id) for e in events
        ],
        "vault": secrets,
    }


@pytest.mark.parametrize("given_as", ["url, CA and token", "kubeconfig"])
def test_the_api_and_the_form_register_alike(client, personas, make_cluster_api, vault, given_as):
    through_form = register_with_the_form(client, personas.alice, "acme", "prod", make_cluster_api())
    api = make_cluster_api()
    body = connection_of(api) if given_as == "url, CA and token" else {"kubeconfig": kubeconfig_of(api)}
    through_api = register_with_the_api(client, personas.bob, "globex", "prod", body)

    by_form, by_api = outcome(through_form, vault), outcome(through_api, vault)
    assert by_form["cluster"] == by_api["cluster"] == Cluster.State.READY
    assert by_form["operation"] == by_api["operation"] == Operation.State.SUCCEEDED
    assert (
        by_form["vault"]
        == by_api["vault"]
        == {
            "/aws": ["access_key_id", "created_at", "rotation", "secret_access_key", "zone_id"],
            "/clusters/<owner-id>": ["ca_pem", "server", "token"],
        }
    )
    assert [(a, o, t, same) for a, s, o, t, same in by_api["events"]] == [
        (a, o, t, same) for a, s, o, t, same in by_form["events"]
    ]
    assert [s for _, s, *_ in by_form["events"]] == ["ui", "job"]
    assert [s for _, s, *_ in by_api["events"]] == ["api", "job"]
    queued = AuditEvent.objects.get(organization__name="globex", action="register.queued")
    assert queued.actor_name == "bob" and queued.client_request_id == "ci-prod" and len(queued.request_id) == 32
    assert through_api.registered_by == personas.bob


def test_a_refused_registration_is_audited_like_the_forms(client, personas, cluster_api):
    _, raw = api_tokens.create_token(personas.alice, "ci", 1)
    body = {"name": "prod", **connection_of(cluster_api), "token": "wrong"}
    response = client.post(
        "/api/v1/organizations/acme/clusters",
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )

    assert response.status_code == 422
    problem = response.json()
    assert problem["detail"].startswith("Cannot use this cluster") and "wrong" not in problem["detail"]
    refused = AuditEvent.objects.get(action="register.refused")
    assert (refused.source, refused.actor_name, refused.outcome) == ("api", "alice", "refused")
    assert not Cluster.objects.exists() and not Operation.objects.exists()
