"""Personal API tokens: made on a page and shown once, kept only as a hash, refused once revoked or expired, rate limited."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from provisioning.models import ApiToken, AuditEvent
from provisioning.services.people import api_tokens

pytestmark = pytest.mark.django_db


def bearer(raw):
    return {"Authorization": f"Bearer {raw}"}


def make_token_on_the_page(client, user, name="ci", days=30):
    client.force_login(user)
    form_key = re.search(r'name="form_key" value="(\w+)"', client.get(reverse("api-tokens")).content.decode()).group(1)
    response = client.post(reverse("api-tokens"), {"name": name, "days": days, "form_key": form_key})
    assert response.status_code == 200
    (raw,) = re.findall(r'value="(odt_[A-Za-z0-9_-]+)"', response.content.decode())
    return raw, response


def every_text_in_the_database():
    """Every value of every column of every table, as text (what a database dump would show)."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            found += [str(value) for row in cursor.fetchall() for value in row]
    return "\n".join(found)


def test_a_token_is_shown_once_and_stored_only_as_its_hash(client, personas):
    raw, response = make_token_on_the_page(client, personas.alice)

    assert response["Cache-Control"].startswith("max-age=0") and "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get()
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.prefix == raw[:12] and len(raw) > 40
    assert raw not in every_text_in_the_database()
    again = client.get(reverse("api-tokens")).content.decode()
    assert raw not in again and f"{token.prefix}…" in again
    assert client.get("/api/v1/me", headers=bearer(raw)).json()["username"] == "alice"


def test_sending_the_form_again_makes_no_second_token_and_shows_none(client, personas):
    client.force_login(personas.alice)
    form = {"name": "ci", "days": 30, "form_key": "a" * 32}
    first = client.post(reverse("api-tokens"), form).content.decode()
    again = client.post(reverse("api-tokens"), form).content.decode()
    assert "odt_" in first and 'value="odt_' not in again
    assert "already made token ci" in again
    assert ApiToken.objects.count() == 1


def test_making_and_revoking_tokens_is_audited_without_the_token(client, personas):
    raw, _ = make_token_on_the_page(client, personas.alice)
    token = ApiToken.objects.get()
    client.post(reverse("api-token-revoke", args=[token.pk]))

    events = AuditEvent.objects.order_by("id")
    assert [(e.action, e.actor_name, e.source) for e in events] == [
        ("api_token.create", "alice", "ui"),
        ("api_token.revoke", "alice", "ui"),
    ]
    assert all(raw not in f"{e.detail} {e.object_repr}" for e in events)


def test_a_revoked_token_is_refused_saying_so(client, personas):
    raw, _ = make_token_on_the_page(client, personas.alice)
    client.post(reverse("api-token-revoke", args=[ApiToken.objects.get().pk]))
    client.logout()

    response = client.get("/api/v1/organizations", headers=bearer(raw))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert "was revoked" in response.json()["detail"]
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_an_expired_token_is_refused(client, personas):
    token, raw = api_tokens.create_token(personas.alice, "old", 1)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get("/api/v1/organizations", headers=bearer(raw))
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_a_deactivated_users_token_is_refused(client, personas):
    _, raw = api_tokens.create_token(personas.alice, "ci", 30)
    personas.alice.is_active = False
    personas.alice.save()
    assert client.get("/api/v1/organizations", headers=bearer(raw)).status_code == 401


def test_an_unknown_or_malformed_token_never_falls_back_to_the_session(client, personas):
    client.force_login(personas.alice)
    for value in ("Bearer odt_not-a-token", "Bearer something-else", "Bearer "):
        assert client.get("/api/v1/organizations", headers={"Authorization": value}).status_code == 401, value
    assert client.get("/api/v1/organizations").status_code == 200


def test_nobody_revokes_someone_elses_token(client, personas):
    token, raw = api_tokens.create_token(personas.alice, "ci", 30)
    client.force_login(personas.bob)
    assert client.post(reverse("api-token-revoke", args=[token.pk])).status_code == 404
    assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 200


def test_the_page_lists_only_my_tokens(client, personas):
    api_tokens.create_token(personas.bob, "bobs-ci", 30)
    api_tokens.create_token(personas.alice, "alices-ci", 30)
    client.force_login(personas.alice)
    page = client.get(reverse("api-tokens")).content.decode()
    assert "alices-ci" in page and "bobs-ci" not in page


def test_validity_is_bounded(personas, settings):
    settings.ORGDNS_API_TOKEN_MAX_DAYS = 30
    with pytest.raises(Exception, match="1 to 30 days"):
        api_tokens.create_token(personas.alice, "long", 90)


def test_the_page_has_no_inline_script_or_style(client, personas):
    _, response = make_token_on_the_page(client, personas.alice)
    html = response.content.decode()
    assert "style=" not in html and not re.search(r"<style", html)
    assert all('src="' in tag or "nonce=" in tag for tag in re.findall(r"<script[^>]*>", html))
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_last_use_is_recorded_without_a_write_per_request(client, personas, django_assert_max_num_queries):
    token, raw = api_tokens.create_token(personas.alice, "ci", 30)
    client.get("/api/v1/me", headers=bearer(raw))
    token.refresh_from_db()
    assert token.last_used_at is not None
    with django_assert_max_num_queries(1):
        api_tokens.authenticate(raw)


@pytest.mark.integration
def test_each_token_has_its_own_rate_limit(client, personas, settings):
    settings.ORGDNS_API_RATE = 0.01
    settings.ORGDNS_API_BURST = 3
    _, first = api_tokens.create_token(personas.alice, "one", 30)
    _, second = api_tokens.create_token(personas.alice, "two", 30)

    statuses = [client.get("/api/v1/me", headers=bearer(first)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.get("/api/v1/me", headers=bearer(first))
    assert refused["Content-Type"] == "application/problem+json" and int(refused["Retry-After"]) > 0
    assert client.get("/api/v1/me", headers=bearer(second)).status_code == 200


def test_support_revokes_a_token_in_the_admin_and_never_sees_its_hash(client, personas, django_user_model):
    token, raw = api_tokens.create_token(personas.alice, "leaked", 30)
    client.force_login(django_user_model.objects.create_superuser("support", password="!"))
    change_page = client.get(reverse("admin:provisioning_apitoken_change", args=[token.pk])).content.decode()
    assert token.prefix in change_page and token.token_hash not in change_page

    changelist = reverse("admin:provisioning_apitoken_changelist")
    client.post(changelist, {"action": "revoke", "_selected_action": [str(token.pk)]})

    assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 401
    event = AuditEvent.objects.get(action="api_token.revoke")
    assert (event.actor_name, event.source, event.detail) == ("support", "admin", "token of alice")


def test_staff_who_only_look_cannot_revoke_a_token_in_the_admin(client, personas):
    from django.contrib.auth.models import Permission

    token, raw = api_tokens.create_token(personas.alice, "ci", 30)
    personas.sam.user_permissions.add(Permission.objects.get(codename="view_apitoken"))
    client.force_login(personas.sam)
    changelist = reverse("admin:provisioning_apitoken_changelist")
    page = client.get(changelist).content.decode()
    assert token.prefix in page and 'value="revoke"' not in page
    client.post(changelist, {"action": "revoke", "_selected_action": [str(token.pk)]})
    assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 200
    assert not AuditEvent.objects.filter(action="api_token.revoke").exists()


def test_tokens_and_sessions_work_beside_login_throttling(personas, settings):
    """django-axes checks every password login (it needs the request); API tokens are no password login, and a
    session made by the login page works on the API. A username locked out of the login keeps its tokens; wrong
    tokens are refused without counting as wrong passwords."""
    from django.test import Client

    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    _, raw = api_tokens.create_token(personas.alice, "ci", 30)
    guesser = Client(REMOTE_ADDR="198.51.100.20")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        guesser.post("/login/", {"username": "alice", "password": "guess"})
    assert guesser.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 429

    api = Client(REMOTE_ADDR="198.51.100.21")
    me = api.get("/api/v1/me", headers=bearer(raw))
    assert me.status_code == 200 and me.json()["authenticated_by"] == "token"
    for wrong in ["not-a-token", raw + "x"] + [f"odt_{n}" + "x" * 42 for n in range(settings.AXES_FAILURE_LIMIT)]:
        assert api.get("/api/v1/me", headers=bearer(wrong)).status_code == 401
    assert api.get("/api/v1/me").status_code == 401

    browser = Client(REMOTE_ADDR="198.51.100.21")
    assert browser.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 302
    me = browser.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["authenticated_by"] == "session" and me.json()["username"] == "alice"
