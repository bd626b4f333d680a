"""Abuse limits (issue 23, item 6): refused cross-organization lookups go to a staff-only trail without the requester's
text; API tokens are scoped (read-only, named organizations) and capped per user; an organization's queued and running
operations are capped; login guesses are capped per username across addresses."""

import re

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from provisioning.models import ApiToken, AuditEvent, Cluster, HostedZone, Membership, Operation
from provisioning.services.certificates.jobs import IssueCertificate
from provisioning.services.people import api_tokens
from provisioning.services.zones import gc as zone_gc

pytestmark = pytest.mark.django_db

PROBE = "/orgs/whatever-i-type-%0a%3Cscript%3E/clusters/{pk}/?q=evil-text"


def bearer(raw):
    return {"Authorization": f"Bearer {raw}"}


def refusals():
    return AuditEvent.objects.filter(action="access.refused").order_by("id")


# --- the refused trail ---------------------------------------------------------------------------------------------


@pytest.fixture
def acme_cluster(personas):
    return Cluster.objects.create(
        organization=personas.acme,
        name="prod",
        api_server="https://prod.example",
        owner_id="acme-prod-1",
        state="ready",
    )


def test_probing_another_organization_leaves_nothing_in_its_audit_and_none_of_the_probers_text(
    client, personas, acme_cluster
):
    client.force_login(personas.bob)
    assert client.get(PROBE.format(pk=acme_cluster.pk)).status_code == 404
    assert client.get(f"/api/v1/organizations/evil-text/clusters/{acme_cluster.pk}").status_code == 404

    events = list(refusals())
    assert len(events) == 2
    for event in events:
        assert event.organization is None  # no organization's trail: staff only
        assert (event.actor, event.object_type, event.object_id) == (personas.bob, "cluster", str(acme_cluster.pk))
        assert event.detail == f"cluster {acme_cluster.pk} of organization acme: not visible to bob"
        assert "evil" not in event.detail + event.object_repr and "whatever" not in event.detail

    # The victim's owner sees nothing of it; neither does the prober; staff do.
    for persona, sees in ((personas.alice, False), (personas.bob, False), (personas.sam, True)):
        client.force_login(persona)
        page = client.get(reverse("audit-list"), {"outcome": "refused"}).content.decode()
        assert ("not visible to bob" in page) is sees, persona
        api = client.get("/api/v1/audit-events", {"outcome": "refused"}).json()
        assert any("not visible to bob" in e["detail"] for e in api["items"]) is sees, persona


# --- API token scopes and cap --------------------------------------------------------------------------------------


def test_a_read_only_token_reads_but_changes_nothing(client, personas):
    token, raw = api_tokens.create_token(personas.alice, "dashboards", 30, read_only=True)
    assert client.get("/api/v1/organizations/acme", headers=bearer(raw)).status_code == 200
    response = client.post(
        "/api/v1/organizations/acme/certificates",
        {"dns_names": ["www.acme.orgdns.test"]},
        content_type="application/json",
        headers=bearer(raw),
    )
    assert response.status_code == 403 and response["Content-Type"] == "application/problem+json"
    assert "read-only" in response.json()["detail"]
    assert not Operation.objects.exists()

    _, writer = api_tokens.create_token(personas.alice, "ci", 30)
    response = client.post(
        "/api/v1/organizations/acme/certificates",
        {"dns_names": ["www.acme.orgdns.test"]},
        content_type="application/json",
        headers=bearer(writer),
    )
    assert response.status_code == 202


def test_a_token_limited_to_one_organization_does_not_reach_the_users_others(client, personas):
    Membership.objects.create(user=personas.alice, organization=personas.globex, role=Membership.Role.MEMBER)
    _, raw = api_tokens.create_token(personas.alice, "acme-ci", 30, organizations=[personas.acme])
    assert client.get("/api/v1/organizations/acme", headers=bearer(raw)).status_code == 200
    assert client.get("/api/v1/organizations/globex", headers=bearer(raw)).status_code == 404
    listed = [o["name"] for o in client.get("/api/v1/organizations", headers=bearer(raw)).json()["items"]]
    assert listed == ["acme"]
    # Her session (and an unlimited token) still reaches both.
    _, unlimited = api_tokens.create_token(personas.alice, "all", 30)
    assert client.get("/api/v1/organizations/globex", headers=bearer(unlimited)).status_code == 200


def test_a_staff_token_limited_to_one_organization_reaches_nothing_else(client, personas, django_user_model):
    _, raw = api_tokens.create_token(personas.sam, "acme-support", 30, organizations=[personas.acme])
    assert client.get("/api/v1/organizations/acme", headers=bearer(raw)).status_code == 200
    assert client.get("/api/v1/organizations/globex", headers=bearer(raw)).status_code == 404
    events = client.get("/api/v1/audit-events", headers=bearer(raw)).json()["items"]
    assert all(e["organization"] == "acme" for e in events)
    superuser_token = api_tokens.create_token(
        django_user_model.objects.create_superuser("root", password="pw-root"), "one", 30, organizations=[personas.acme]
    )[1]
    create = {"name": "initech"}
    refused = client.post(
        "/api/v1/organizations", create, content_type="application/json", headers=bearer(superuser_token)
    )
    assert refused.status_code == 403
    _, unlimited = api_tokens.create_token(django_user_model.objects.get(username="root"), "all", 30)
    made = client.post("/api/v1/organizations", create, content_type="application/json", headers=bearer(unlimited))
    assert made.status_code == 201


def test_a_token_cannot_be_limited_to_someone_elses_organization(personas):
    with pytest.raises(Exception, match="only be limited to your own organizations, not globex"):
        api_tokens.create_token(personas.alice, "sneaky", 30, organizations=[personas.globex])
    assert not ApiToken.objects.exists()


def test_the_tokens_page_makes_scoped_tokens(client, personas):
    client.force_login(personas.alice)
    page = client.get(reverse("api-tokens")).content.decode()
    form_key = re.search(r'name="form_key" value="(\w+)"', page).group(1)
    assert 'value="' + str(personas.globex.pk) + '"' not in page  # only her organizations are offered
    client.post(
        reverse("api-tokens"),
        {"name": "ro", "days": 30, "form_key": form_key, "read_only": "on", "organizations": [personas.acme.pk]},
    )
    token = ApiToken.objects.get()
    assert token.read_only and list(token.organizations.all()) == [personas.acme]
    assert "read-only" in client.get(reverse("api-tokens")).content.decode()


def test_a_user_has_at_most_the_cap_of_working_tokens(client, personas, settings):
    settings.ORGDNS_API_TOKENS_PER_USER = 2
    first, _ = api_tokens.create_token(personas.alice, "one", 30)
    api_tokens.create_token(personas.alice, "two", 30)
    with pytest.raises(Exception, match="already have 2 API tokens that still work"):
        api_tokens.create_token(personas.alice, "three", 30)
    api_tokens.create_token(personas.bob, "bobs", 30)  # the cap is per user

    client.force_login(personas.alice)
    page = client.get(reverse("api-tokens")).content.decode()
    form_key = re.search(r'name="form_key" value="(\w+)"', page).group(1)
    refused = client.post(reverse("api-tokens"), {"name": "three", "days": 30, "form_key": form_key}).content.decode()
    assert "already have 2 API tokens that still work" in refused and 'value="odt_' not in refused

    api_tokens.revoke_token(personas.alice, first.pk)  # a revoked token frees its place
    api_tokens.create_token(personas.alice, "three", 30)
    assert api_tokens.live_tokens_of(personas.alice).count() == 2


# --- operations per organization -----------------------------------------------------------------------------------


def fill_operations(organization, count):
    for _ in range(count):
        Operation.objects.create(kind=IssueCertificate.name, organization=organization, state=Operation.State.QUEUED)


def test_the_api_answers_429_once_an_organization_has_as_many_operations_as_allowed(client, personas, settings):
    settings.ORGDNS_ORG_OPERATION_LIMIT = 3
    fill_operations(personas.acme, 2)
    _, raw = api_tokens.create_token(personas.alice, "ci", 30)

    def issue():
        return client.post(
            "/api/v1/organizations/acme/certificates",
            {"dns_names": ["www.acme.orgdns.test"]},
            content_type="application/json",
            headers=bearer(raw),
        )

    assert issue().status_code == 202  # the third
    response = issue()
    assert response.status_code == 429 and response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "30"
    assert "acme already has 3 operations queued or running" in response.json()["detail"]
    assert Operation.objects.filter(organization=personas.acme).count() == 3

    Operation.objects.filter(organization=personas.acme).update(state=Operation.State.SUCCEEDED)
    assert issue().status_code == 202


def test_the_page_shows_a_form_error_when_the_organization_is_at_its_limit(client, personas, settings):
    settings.ORGDNS_ORG_OPERATION_LIMIT = 1
    fill_operations(personas.acme, 1)
    client.force_login(personas.alice)
    response = client.post(
        reverse("certificate-issue", args=["acme"]),
        {"dns_names": "www.acme.orgdns.test", "namespace": "default", "secret_name": "www-tls"},
    )
    assert response.status_code == 200
    assert "acme already has 1 operations queued or running" in response.content.decode()
    assert Operation.objects.count() == 1


def test_what_orgdns_starts_itself_is_not_held_back(personas, settings):
    settings.ORGDNS_ORG_OPERATION_LIMIT = 1
    fill_operations(personas.acme, 1)
    zone = HostedZone.objects.create(organization=personas.acme, name="acme.orgdns.test", state="active")
    _, operation = zone_gc.claim_for_deletion(zone)  # the GC: no user
    assert operation is not None


# --- login throttling per username ---------------------------------------------------------------------------------


def attempt(client, username, password):
    return client.post("/login/", {"username": username, "password": password, "next": "/"})


def test_guesses_spread_over_many_addresses_lock_the_username(personas):
    per_address = settings.AXES_FAILURE_LIMIT - 1  # never enough to lock one address
    limit = settings.LOGIN_USERNAME_FAILURE_LIMIT
    done = 0
    address = 0
    while done < limit - 1:
        client = Client(REMOTE_ADDR=f"198.51.100.{address}")
        for _ in range(min(per_address, limit - 1 - done)):
            assert attempt(client, "sam", "guess").status_code == 200
            done += 1
        address += 1
    # One below the username's limit: sam still logs in, from anywhere.
    assert attempt(Client(REMOTE_ADDR="203.0.113.1"), "sam", "pw-sam").status_code == 302

    for n in range(limit):  # the success reset the count: guess again, spread out, up to the limit
        attempt(Client(REMOTE_ADDR=f"198.51.100.{n // per_address}"), "sam", "guess")
    locked = attempt(Client(REMOTE_ADDR="203.0.113.2"), "sam", "pw-sam")
    assert locked.status_code == 429 and "Too many login attempts" in locked.content.decode()
    # Only sam's name is locked.
    assert attempt(Client(REMOTE_ADDR="203.0.113.2"), "alice", "pw-alice").status_code == 302
