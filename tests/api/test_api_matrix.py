"""The tenant matrix of the API: every endpoint × anonymous, no organization, owner of another organization, viewer,
member, owner, staff, staff who may act, support staff, superuser, and revoked and expired tokens.

Other organizations' objects are 404 (their names are not revealed), viewers cannot act, members act but do not
manage members; staff see everything and change nothing unless they have the permission to act in any organization;
creating organizations takes the permission to add one; a token that is revoked or expired is refused. Every refusal
of an authenticated caller is audited (access.refused), as on the pages.
"""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from provisioning.models import (
    ApiToken,
    AuditEvent,
    Certificate,
    Cluster,
    HostedZone,
    Membership,
    Operation,
)
from provisioning.services.backends import Backends
from provisioning.services.credentials.vault_paths import ca_path, cluster_secret_path, material_path
from provisioning.services.people import api_tokens

pytestmark = pytest.mark.django_db

READ, WRITE, MEMBERS, STAFF, ANYONE = "read", "write", "members", "staff", "anyone"

# (who, what they may do in acme: None for nothing, else the most they may do)
PERSONAS = {
    "anonymous": None,
    "no organization": None,
    "owner of another organization": None,
    "viewer": READ,
    "member": WRITE,
    "owner": MEMBERS,
    "staff": READ,  # sees every organization, changes nothing
    "staff who may act": MEMBERS,  # act_in_any_organization: acts and manages members, creates no organization
    "support staff": STAFF,  # act_in_any_organization and add_organization
    "superuser": STAFF,
    "revoked token": None,
    "expired token": None,
}
LEVELS = [READ, WRITE, MEMBERS, STAFF]
REFUSED_TOKENS = ("anonymous", "revoked token", "expired token")


def acme_rows(personas, django_user_model, api_server, zone_id):
    """acme with a ready cluster (whose last register failed), an active zone and an issued certificate, as rows."""
    cluster = Cluster.objects.create(
        organization=personas.acme,
        name="prod",
        api_server=api_server,
        owner_id="acme-prod-1",
        state=Cluster.State.READY,
    )
    failed = Operation.objects.create(
        kind="register",
        organization=personas.acme,
        cluster=cluster,
        state=Operation.State.FAILED,
        error="x",
    )
    HostedZone.objects.create(
        organization=personas.acme,
        name="acme.orgdns.test",
        state=HostedZone.State.ACTIVE,
        zone_id=zone_id,
        access_key_id="AKIAACME",
    )
    now = timezone.now()
    certificate = Certificate.objects.create(
        organization=personas.acme,
        dns_names=["app.acme.orgdns.test"],
        state=Certificate.State.ACTIVE,
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=89),
    )
    AuditEvent.objects.create(actor_name="alice", source="ui", action="register.queued", organization=personas.acme)
    mia = django_user_model.objects.create_user("mia")
    Membership.objects.create(user=mia, organization=personas.acme, role=Membership.Role.MEMBER)
    Membership.objects.filter(user=personas.bob).update(role=Membership.Role.OWNER)
    return SimpleNamespace(cluster=cluster, operation=failed, certificate=certificate, mia=mia)


@pytest.fixture
def acme(personas, django_user_model):
    """acme as rows only (the database tier): its cluster's API server is nowhere, its zone only a row."""
    acme = acme_rows(personas, django_user_model, "https://cluster.invalid:6443", "ZACMEROWSONLY")
    acme.api = SimpleNamespace(url="https://cluster.invalid:6443", token="not-a-token", ca_pem="not a CA")
    return acme


@pytest.fixture
def acme_for_real(personas, cluster_api, aws, django_user_model):
    """acme with a real cluster, its zone in Route53 and its certificates in Vault; its tenant let orgdns install
    certificates in namespace default (which the cluster keeps between tests)."""
    cluster_api.allow_certificates("default")
    zone_id = aws.route53.create_hosted_zone(Name="acme.orgdns.test", CallerReference="acme")["HostedZone"]["Id"]
    acme = acme_rows(personas, django_user_model, cluster_api.url, zone_id.split("/")[-1])
    vault = Backends().vault()
    vault.write(cluster_secret_path(vault, acme.cluster), cluster_api.connection.as_secret())  # what registration keeps
    vault.write(
        ca_path(vault, personas.acme), {"certificate": "-----BEGIN CERTIFICATE-----\nCA\n", "key": "never shown"}
    )
    vault.write(
        material_path(vault, acme.certificate),
        {"certificate": "-----BEGIN CERTIFICATE-----\nLEAF\n", "key": "never"},
    )
    acme.api = cluster_api
    return acme


def endpoints(acme):
    """(level needed, method, path, JSON body, the status of success)."""
    base = "/api/v1/organizations/acme"
    cluster, certificate = f"{base}/clusters/{acme.cluster.pk}", f"{base}/certificates/{acme.certificate.pk}"
    connection = {"api_server": acme.api.url, "token": acme.api.token, "ca_pem": acme.api.ca_pem}
    target = {"cluster": acme.cluster.pk, "namespace": "default", "secret_name": "app-tls"}
    return [
        (ANYONE, "get", "/api/v1/me", None, 200),
        (ANYONE, "get", "/api/v1/organizations", None, 200),
        (STAFF, "post", "/api/v1/organizations", {"name": "newco"}, 201),
        (READ, "get", base, None, 200),
        (READ, "get", f"{base}/members", None, 200),
        (MEMBERS, "put", f"{base}/members/charlie", {"role": "viewer"}, 200),
        (MEMBERS, "delete", f"{base}/members/vera", None, 204),
        (MEMBERS, "post", f"{base}/offboard", {"confirmation": "acme"}, 202),  # owners (and staff who may act) only
        (READ, "get", f"{base}/clusters", None, 200),
        (WRITE, "post", f"{base}/clusters", {"name": "edge", **connection}, 202),
        (READ, "get", cluster, None, 200),
        (WRITE, "post", f"{cluster}/reprovision", None, 202),
        (WRITE, "delete", cluster, None, 202),
        (READ, "get", f"{base}/zone", None, 200),
        (READ, "get", f"{base}/zone/records", None, 200),
        (WRITE, "post", f"{base}/zone/rotate-key", None, 202),
        (READ, "get", f"{base}/certificates", None, 200),
        (WRITE, "post", f"{base}/certificates", {"dns_names": ["www.acme.orgdns.test"], "install": [target]}, 202),
        (READ, "get", f"{base}/certificates/ca.crt", None, 200),
        (READ, "get", certificate, None, 200),
        (READ, "get", f"{certificate}/certificate.crt", None, 200),
        (WRITE, "post", f"{certificate}/install", target, 202),
        (WRITE, "post", f"{certificate}/renew", None, 202),
        (WRITE, "delete", certificate, None, 202),
        (ANYONE, "get", "/api/v1/operations", None, 200),
        (READ, "get", f"/api/v1/operations/{acme.operation.pk}", None, 200),
        (WRITE, "post", f"/api/v1/operations/{acme.operation.pk}/retry", None, 202),
        (ANYONE, "get", "/api/v1/audit-events", None, 200),
    ]


ENDPOINT_COUNT = 28


def token_of(persona, personas, acme, django_user_model):
    users = {
        "no organization": personas.charlie,
        "owner of another organization": personas.bob,
        "viewer": personas.vera,
        "member": acme.mia,
        "owner": personas.alice,
        "staff": personas.sam,
        "revoked token": personas.alice,
        "expired token": personas.alice,
    }
    if persona == "anonymous":
        return None
    if persona in ("staff who may act", "support staff"):
        user = django_user_model.objects.create_user("sue", is_staff=True)
        codenames = ["act_in_any_organization"] + (["add_organization"] if persona == "support staff" else [])
        user.user_permissions.add(
            *Permission.objects.filter(content_type__app_label="provisioning", codename__in=codenames)
        )
    else:
        user = users.get(persona) or django_user_model.objects.create_superuser("root", password="!")
    token, raw = api_tokens.create_token(user, persona, 30)
    if persona == "revoked token":
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    if persona == "expired token":
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    return raw


def expected_status(persona, level, success):
    allowed = PERSONAS[persona]
    if persona in REFUSED_TOKENS:
        return 401
    if level == ANYONE:
        return success
    if level == STAFF:
        return success if allowed == STAFF else 403
    if allowed is None:
        return 404  # another organization's: not revealed
    return success if LEVELS.index(allowed) >= LEVELS.index(level) else 403


# The endpoints whose success reaches a server (registration probes the cluster, the records are read from Route53,
# certificates from Vault, an installation checks the cluster's RBAC): their successful cells run in the integration
# tier against the real servers; every other cell, refusals included, in the database tier.
CROSSING = [
    ("post", "/clusters"),
    ("get", "/zone/records"),
    ("get", "/certificates/ca.crt"),
    ("post", "/certificates"),
    ("get", "/certificate.crt"),
    ("post", "/install"),
]


def crosses(index, persona):
    level, method, path, _, success = endpoints(SimpleNamespace(**PLACEHOLDER_IDS))[index]
    crossing = any(method == verb and path.endswith(end) for verb, end in CROSSING)
    return crossing and expected_status(persona, level, success) == success


PLACEHOLDER_IDS = {
    "cluster": SimpleNamespace(pk=1),
    "certificate": SimpleNamespace(pk=1),
    "operation": SimpleNamespace(pk=1),
    "api": SimpleNamespace(url="", token="", ca_pem=""),
}
CELLS = [(persona, index) for index in range(ENDPOINT_COUNT) for persona in PERSONAS]


@pytest.mark.parametrize(("persona", "index"), [cell for cell in CELLS if not crosses(cell[1], cell[0])])
def test_the_matrix(client, personas, acme, django_user_model, persona, index):
    check_cell(client, personas, acme, django_user_model, persona, index)


@pytest.mark.parametrize(("persona", "index"), [cell for cell in CELLS if crosses(cell[1], cell[0])])
def test_the_matrix_across_a_boundary(client, personas, acme_for_real, django_user_model, persona, index):
    check_cell(client, personas, acme_for_real, django_user_model, persona, index)


def check_cell(client, personas, acme, django_user_model, persona, index):
    all_endpoints = endpoints(acme)
    assert len(all_endpoints) == ENDPOINT_COUNT
    level, method, path, body, success = all_endpoints[index]
    raw = token_of(persona, personas, acme, django_user_model)
    headers = {"Authorization": f"Bearer {raw}"} if raw else {}
    operations_before = Operation.objects.count()

    response = getattr(client, method)(path, body, content_type="application/json", headers=headers)

    expected = expected_status(persona, level, success)
    assert response.status_code == expected, (persona, method, path, response.content[:500])
    refusals = AuditEvent.objects.filter(action="access.refused", source="api", outcome="refused")
    if expected >= 400:
        assert response["Content-Type"] == "application/problem+json"
        assert Operation.objects.count() == operations_before
        assert not AuditEvent.objects.filter(source="api", outcome="ok").exists()
    if expected in (403, 404):  # a caller reaching for what is not theirs, or acting without the right: recorded
        (refusal,) = refusals
        assert refusal.actor_name == ApiToken.objects.get(name=persona).user.get_username()
    else:
        assert not refusals.exists(), [e.detail for e in refusals]
    if expected == 202:
        operation = Operation.objects.get(pk=response.json()["operation"]["id"])
        assert response["Location"] == f"/api/v1/operations/{operation.pk}"
        assert AuditEvent.objects.filter(
            source="api", action=f"{operation.kind}.queued", request_id=response["X-Request-ID"]
        ).exists()
    if (level, method) == (ANYONE, "get") and path != "/api/v1/me" and expected == 200:
        shown = str(response.json()["items"])
        sees_acme = PERSONAS[persona] is not None
        assert ("acme" in shown) == sees_acme, (persona, path, shown[:300])


def test_the_right_organization_with_another_organizations_object_is_not_found(client, personas, acme):
    _, raw = api_tokens.create_token(personas.bob, "ci", 30)
    headers = {"Authorization": f"Bearer {raw}"}
    for path in (
        f"/api/v1/organizations/globex/clusters/{acme.cluster.pk}",
        f"/api/v1/organizations/globex/certificates/{acme.certificate.pk}",
        f"/api/v1/organizations/globex/certificates/{acme.certificate.pk}/certificate.crt",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 404, path
        assert "acme" not in response.content.decode()
    response = client.delete(f"/api/v1/organizations/globex/clusters/{acme.cluster.pk}", headers=headers)
    assert response.status_code == 404
    acme.cluster.refresh_from_db()
    assert acme.cluster.state == Cluster.State.READY


def test_a_token_loses_an_organization_with_its_users_membership(client, personas, acme):
    _, raw = api_tokens.create_token(personas.vera, "ci", 30)
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/organizations/acme", headers=headers).status_code == 200
    Membership.objects.filter(user=personas.vera).delete()
    assert client.get("/api/v1/organizations/acme", headers=headers).status_code == 404


def test_the_session_works_and_needs_the_csrf_token_for_changes(personas, acme):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(personas.alice)
    assert browser.get("/api/v1/organizations/acme").status_code == 200
    refused = browser.post(f"/api/v1/organizations/acme/clusters/{acme.cluster.pk}/reprovision")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get("/")  # a page sets the csrftoken cookie
    csrf = browser.cookies["csrftoken"].value
    accepted = browser.post(
        f"/api/v1/organizations/acme/clusters/{acme.cluster.pk}/reprovision", headers={"X-CSRFToken": csrf}
    )
    assert accepted.status_code == 202
