"""Signing in through the company's identity provider — the real Dex reading people and groups from the real OpenLDAP —
and the directory as the source of truth of who belongs where (issue 24)."""

import socket
import time
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from joserfc.jwk import RSAKey

from provisioning.models import ApiToken, AuditEvent, ExternalIdentity, HostedZone, Membership, Operation, Organization
from provisioning.services.people import api_tokens, sign_in
from tests.sign_in.conftest import join

pytestmark = pytest.mark.django_db

User = get_user_model()


def keyed_zone(org):
    """A zone whose IAM user has a key, so that a removal has a key to rotate (no job reaches AWS here)."""
    return HostedZone.objects.create(
        organization=org,
        name=org.zone_name,
        zone_id=f"Z{org.pk}",
        access_key_id=f"AKIA{org.name.upper()}",
        state=HostedZone.State.ACTIVE,
    )


def audited(action, **fields):
    return AuditEvent.objects.filter(action=action, **fields)


def test_first_sign_in_makes_the_user_known_by_issuer_and_subject(provider, person, through_dex):
    acme = Organization.objects.create(name="acme")
    pat = person("orgdns:acme:owner", name="Pat Doe")
    client = Client()
    answer = through_dex.sign_in(client, pat)
    assert answer.status_code == 302 and answer["Location"] == "/"

    user = User.objects.get(username=pat.uid)
    assert (user.email, user.first_name, user.last_name) == (pat.email, "Pat", "Doe")
    assert not user.has_usable_password()
    identity = ExternalIdentity.objects.get(user=user)
    assert identity.issuer == provider.issuer and identity.subject  # Dex's sub, from the entry's entryUUID
    membership = Membership.objects.get(user=user, organization=acme)
    assert (membership.role, membership.source) == ("owner", "directory")
    assert client.get("/orgs/acme/").status_code == 200
    assert audited("user.create", actor=user).exists()
    assert audited("login", actor=user, detail="signed in with Dex").exists()
    assert audited("member.set", organization=acme, detail__contains="(directory groups)").exists()


def test_groups_changed_with_ldapmodify_apply_at_the_next_sign_in(provider, person, through_dex, directory):
    acme = Organization.objects.create(name="acme")
    keyed_zone(acme)
    pat = person("orgdns:acme:viewer")
    through_dex.sign_in(Client(), pat)
    user = User.objects.get(username=pat.uid)
    assert Membership.objects.get(user=user, organization=acme).role == "viewer"
    token, raw = api_tokens.create_token(user, "ci", 7)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/organizations/acme").status_code == 200

    # Added to the owners with ldapmodify: owner at the next sign-in (the highest role of their groups).
    join(directory, "orgdns:acme:owner", pat.uid)
    through_dex.sign_in(Client(), pat)
    assert Membership.objects.get(user=user, organization=acme).role == "owner"
    assert not Operation.objects.filter(kind="rotate_credentials").exists()

    # Removed from both: no role at the next sign-in, the key rotation queued as a removal by hand does, and the
    # API token loses the organization at once.
    directory.remove_from_group("orgdns:acme:owner", pat.uid)
    directory.remove_from_group("orgdns:acme:viewer", pat.uid)
    client = Client()
    assert through_dex.sign_in(client, pat).status_code == 302
    assert not Membership.objects.filter(user=user, organization=acme).exists()
    rotation = Operation.objects.get(kind="rotate_credentials", organization=acme)
    assert f"{pat.uid} was removed from acme" in rotation.log
    assert HostedZone.objects.get(organization=acme).rotations_requested == 1
    assert audited("member.remove", organization=acme, detail__contains="no longer in a directory group").exists()
    assert client.get("/orgs/acme/").status_code == 404
    assert api.get("/api/v1/organizations/acme").status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None  # the token still works, without acme


def test_the_session_ends_at_its_maximum_age(provider, person, through_dex, settings):
    """A person the directory dropped keeps no access past the session's maximum age, however active."""
    settings.ORGDNS_SESSION_MAX_AGE = 600
    Organization.objects.create(name="acme")
    pat = person("orgdns:acme:member")
    client, api = Client(), Client()
    with time_machine.travel(time.time(), tick=True) as traveller:
        through_dex.sign_in(client, pat)
        through_dex.sign_in(api, pat)
        assert client.get("/orgs/acme/").status_code == 200
        traveller.shift(timedelta(seconds=590))
        assert client.get("/orgs/acme/").status_code == 200  # activity does not extend it
        assert api.get("/api/v1/organizations/acme").status_code == 200
        traveller.shift(timedelta(seconds=20))
        answer = client.get("/orgs/acme/")
        assert api.get("/api/v1/organizations/acme").status_code == 401  # the API's session ends too
    assert answer.status_code == 302 and answer["Location"].startswith("/login/?next=/orgs/acme/")
    assert "_auth_user_id" not in client.session
    assert audited("session.expired", detail__startswith=pat.uid).exists()


def test_an_email_change_keeps_the_user_and_the_same_email_elsewhere_is_another_user(
    provider, person, through_dex, directory
):
    pat = person()
    through_dex.sign_in(Client(), pat)
    user = User.objects.get(username=pat.uid)
    directory.set_email(pat.uid, "pat.new@example.com")
    through_dex.sign_in(Client(), pat)
    user.refresh_from_db()
    assert user.email == "pat.new@example.com" and User.objects.filter(email__startswith="pat.new").count() == 1

    # Someone of another provider with the same name and address is another person: never matched by either.
    twin = person()
    other = User.objects.create_user(twin.uid, email=twin.email)
    ExternalIdentity.objects.create(user=other, issuer="https://other-idp.example", subject="x")
    through_dex.sign_in(Client(), twin)
    mine = ExternalIdentity.objects.get(issuer=provider.issuer, user__email=twin.email).user
    assert mine != other and mine.username == f"{twin.uid}-2"


def test_a_tampered_or_replayed_state_gives_a_clear_page_and_an_audit_row(provider, person, through_dex):
    pat = person()
    client = Client()
    callback = urlsplit(through_dex.at_dex(client, pat))
    query = dict(parse_qsl(callback.query))
    tampered = client.get(callback.path, {**query, "state": query["state"][:-2] + "xx"})
    assert tampered.status_code == 400
    assert "could not be matched to one begun in this browser" in tampered.content.decode()
    assert audited("login.provider_failed", outcome="failed", detail__contains="state did not match").exists()
    assert "_auth_user_id" not in client.session

    # The right answer, used once, then replayed: refused the second time.
    client = Client()
    callback = urlsplit(through_dex.at_dex(client, pat))
    assert client.get(f"{callback.path}?{callback.query}").status_code == 302
    replay = Client()
    assert replay.get(f"{callback.path}?{callback.query}").status_code == 400


def test_a_token_that_does_not_verify_gives_a_clear_page(provider, person, through_dex):
    """Clock skew is allowed up to ORGDNS_OIDC_CLOCK_SKEW (60 s): a clock 30 s behind Dex's takes its token; one 10
    min behind sees a token issued in the future, and refuses it."""
    pat = person()
    client = Client()
    callback = urlsplit(through_dex.at_dex(client, pat))
    with time_machine.travel(time.time() - 30):
        assert client.get(f"{callback.path}?{callback.query}").status_code == 302

    client = Client()
    callback = urlsplit(through_dex.at_dex(client, pat))
    with time_machine.travel(time.time() - 600):
        answer = client.get(f"{callback.path}?{callback.query}")
    assert answer.status_code == 400
    assert "did not verify" in answer.content.decode()
    assert audited("login.provider_failed", detail__contains="ID token refused").exists()
    assert "_auth_user_id" not in client.session


def test_a_rotated_signing_key_is_fetched_when_a_token_names_it(provider, person, through_dex):
    """orgdns's cached key set holds only a key the provider no longer uses: the token's key is fetched."""
    client_app = sign_in._client()
    sign_in.discovered(client_app)
    stale = RSAKey.import_key(rsa.generate_private_key(public_exponent=65537, key_size=2048)).as_dict(private=False)
    client_app.server_metadata["jwks"] = {"keys": [{**stale, "kid": "retired"}]}
    assert through_dex.sign_in(Client(), person()).status_code == 302
    assert "retired" not in [key.get("kid") for key in client_app.server_metadata["jwks"]["keys"]]


def test_a_token_signed_by_another_key_does_not_verify(provider, person, through_dex):
    """orgdns holds, under the provider's key ids, keys that did not sign the token: its signature is refused."""
    client_app = sign_in._client()
    real = client_app.fetch_jwk_set()
    other = RSAKey.import_key(rsa.generate_private_key(public_exponent=65537, key_size=2048)).as_dict(private=False)
    client_app.server_metadata["jwks"] = {"keys": [{**other, "kid": key["kid"]} for key in real["keys"]]}
    answer = through_dex.sign_in(Client(), person())
    assert answer.status_code == 400 and "did not verify" in answer.content.decode()
    assert audited("login.provider_failed", detail__contains="bad_signature").exists()


def test_a_missing_claim_gives_a_clear_page(provider, person, through_dex, settings):
    settings.ORGDNS_OIDC_USERNAME_CLAIM = "nickname"  # Dex sends none
    answer = through_dex.sign_in(Client(), person())
    assert answer.status_code == 502 and "lacks the claim &#x27;nickname&#x27;" in answer.content.decode()
    assert audited("login.provider_failed", detail__contains="claim 'nickname' missing").exists()


def test_a_next_off_site_is_refused_and_one_on_site_followed(provider, person, through_dex):
    Organization.objects.create(name="acme")
    pat = person("orgdns:acme:viewer")
    assert through_dex.sign_in(Client(), pat, next_url="https://evil.example/")["Location"] == "/"
    assert through_dex.sign_in(Client(), pat, next_url="//evil.example/x")["Location"] == "/"
    assert through_dex.sign_in(Client(), pat, next_url="/orgs/acme/")["Location"] == "/orgs/acme/"


def test_groups_naming_no_organization_create_none(provider, person, through_dex):
    pat = person("orgdns:nowhere:owner")
    through_dex.sign_in(Client(), pat)
    assert not Organization.objects.filter(name="nowhere").exists()
    assert audited("sign_in.unknown_organization", outcome="refused", detail__contains="'nowhere'").exists()


def test_staff_and_superuser_follow_the_table(provider, person, through_dex, directory):
    pat = person("platform-support")
    through_dex.sign_in(Client(), pat)
    user = User.objects.get(username=pat.uid)
    assert (user.is_staff, user.is_superuser) == (True, False)
    join(directory, "platform-admins", pat.uid)
    through_dex.sign_in(Client(), pat)
    user.refresh_from_db()
    assert (user.is_staff, user.is_superuser) == (True, True)
    directory.remove_from_group("platform-admins", pat.uid)
    directory.remove_from_group("platform-support", pat.uid)
    through_dex.sign_in(Client(), pat)
    user.refresh_from_db()
    assert (user.is_staff, user.is_superuser) == (False, False)


def test_directory_memberships_are_marked_and_not_editable_by_hand(provider, person, through_dex, personas, client):
    pat = person("orgdns:acme:member")
    through_dex.sign_in(Client(), pat)
    membership = Membership.objects.get(user__username=pat.uid)
    client.force_login(personas.alice)  # acme's owner
    page = client.get("/orgs/acme/members/").content.decode()
    assert "directory" in page and f"/orgs/acme/members/{membership.pk}/remove" not in page
    client.post(f"/orgs/acme/members/{membership.pk}/remove")
    changed = client.post("/orgs/acme/members/", {"username": pat.uid, "role": "owner"})
    assert "comes from the company directory" in changed.content.decode()
    _, raw = api_tokens.create_token(personas.alice, "ci", 7)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    put = api.put(f"/api/v1/organizations/acme/members/{pat.uid}", {"role": "owner"}, content_type="application/json")
    delete = api.delete(f"/api/v1/organizations/acme/members/{pat.uid}")
    assert (put.status_code, delete.status_code) == (422, 409)
    assert all("comes from the company directory" in answer.json()["detail"] for answer in (put, delete))
    sources = {
        item["username"]: item["source"] for item in api.get("/api/v1/organizations/acme/members").json()["items"]
    }
    assert (sources[pat.uid], sources["alice"]) == ("directory", "hand")
    membership.refresh_from_db()
    assert membership.role == "member"
    # Hand-made ones are managed as before.
    assert client.post(f"/orgs/acme/members/{Membership.objects.get(user=personas.vera).pk}/remove").status_code == 302
    assert not Membership.objects.filter(user=personas.vera).exists()


def test_with_mapping_off_memberships_stay_hand_made(provider, person, through_dex, settings, personas):
    settings.ORGDNS_OIDC_GROUP_PATTERN = None
    settings.ORGDNS_OIDC_GROUP_MAP = {}
    pat = person("orgdns:acme:owner")
    through_dex.sign_in(Client(), pat)
    user = User.objects.get(username=pat.uid)
    assert not user.memberships.exists()
    Membership.objects.create(user=user, organization=personas.globex, role="viewer")
    through_dex.sign_in(Client(), pat)
    assert list(user.memberships.values_list("organization__name", "source")) == [("globex", "hand")]


def test_a_deactivated_user_is_refused(provider, person, through_dex):
    pat = person()
    through_dex.sign_in(Client(), pat)
    User.objects.filter(username=pat.uid).update(is_active=False)
    answer = through_dex.sign_in(Client(), pat)
    assert answer.status_code == 403 and "deactivated" in answer.content.decode()


def test_failed_sign_ins_through_the_provider_are_throttled(provider, person, through_dex):
    client = Client(REMOTE_ADDR="198.51.100.40")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.get("/oidc/callback/", {"code": "x", "state": "forged"})
    assert client.get("/login/provider/").status_code == 429
    assert Client(REMOTE_ADDR="198.51.100.41").get("/login/provider/").status_code == 302  # others are not


def test_logout_ends_the_session_and_the_providers_where_it_offers_it(provider, person, through_dex):
    client = Client()
    through_dex.sign_in(client, person())
    answer = client.post("/logout/")
    assert answer.status_code == 302 and answer["Location"] == "/login/"  # Dex has no end_session_endpoint
    assert "_auth_user_id" not in client.session and client.get("/").status_code == 302

    # A provider that advertises one (Keycloak, Okta, Entra ID; none runs here): its discovery, with it.
    client = Client()
    through_dex.sign_in(client, person())
    sign_in._client().server_metadata["end_session_endpoint"] = f"{provider.issuer}/logout"
    answer = client.post("/logout/")
    after = urlencode({"client_id": provider.client_id, "post_logout_redirect_uri": "http://testserver/login/"})
    assert answer["Location"] == f"{provider.issuer}/logout?{after}"
    assert "_auth_user_id" not in client.session


@pytest.fixture
def silent_provider(settings):
    """An issuer that accepts connections and never answers (a hung provider)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    settings.ORGDNS_OIDC_ISSUER = f"http://127.0.0.1:{listener.getsockname()[1]}/dex"
    settings.ORGDNS_OIDC_CLIENT_ID, settings.ORGDNS_OIDC_CLIENT_SECRET = "orgdns", "unused"
    settings.ORGDNS_OIDC_PROVIDER_NAME = "Dex"
    sign_in.forget_provider()
    yield
    listener.close()
    sign_in.forget_provider()


@pytest.mark.integration
def test_provider_down_answers_within_5_s_and_break_glass_still_signs_in(silent_provider, settings):
    settings.ORGDNS_LOCAL_LOGIN = False
    settings.ORGDNS_BREAK_GLASS_USERS = ["admin"]
    settings.ORGDNS_OIDC_DOWN_RETRY = 3
    User.objects.create_superuser("admin", "admin@example.com", "pw-admin-break-glass")
    client = Client()
    started = time.monotonic()
    page = client.get("/login/")
    assert page.status_code == 200 and "Sign in with Dex" in page.content.decode()
    down = client.get("/login/provider/")
    assert time.monotonic() - started < 5
    assert down.status_code == 503 and "Dex cannot be reached right now" in down.content.decode()
    assert audited("login.provider_failed", detail__contains="discovery at").exists()
    started = time.monotonic()
    assert client.get("/login/provider/").status_code == 503 and time.monotonic() - started < 1  # not asked again
    for _ in range(settings.AXES_FAILURE_LIMIT):  # an outage is nobody's attempt: it does not lock anyone out
        assert client.get("/login/provider/").status_code == 503
    time.sleep(settings.ORGDNS_OIDC_DOWN_RETRY)  # asked again once the wait is over (those attempts did not extend it)
    started = time.monotonic()
    assert (
        client.get("/login/provider/").status_code == 503 and time.monotonic() - started >= settings.ORGDNS_OIDC_TIMEOUT
    )

    answer = client.post("/login/", {"username": "admin", "password": "pw-admin-break-glass"})
    assert answer.status_code == 302 and client.get("/").status_code == 200


def test_passwords_off_refuse_everyone_but_break_glass(settings, personas):
    settings.ORGDNS_LOCAL_LOGIN = False
    settings.ORGDNS_BREAK_GLASS_USERS = ["sam"]
    refused = Client().post("/login/", {"username": "alice", "password": "pw-alice"})
    assert refused.status_code == 200 and "Passwords are switched off here" in refused.content.decode()
    assert audited("login.refused", detail__contains="'alice'").exists()
    assert Client().post("/admin/login/", {"username": "alice", "password": "pw-alice"}).status_code == 200
    signed_in = Client().post("/login/", {"username": "sam", "password": "pw-sam", "next": "https://evil.example/"})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/"  # never off-site
    assert audited("login", actor=personas.sam, detail="signed in with a password").exists()
    # A password session begun before passwords were switched off ends.
    settings.ORGDNS_LOCAL_LOGIN = True
    alice = Client()
    alice.post("/login/", {"username": "alice", "password": "pw-alice"})
    assert alice.get("/").status_code == 200
    settings.ORGDNS_LOCAL_LOGIN = False
    assert alice.get("/").status_code == 302


def test_wrong_passwords_are_audited(personas):
    Client().post("/login/", {"username": "alice", "password": "guess"})
    assert audited("login.failed", outcome="failed", detail__contains="'alice'").exists()


def test_the_provider_refusing_gives_a_clear_page(provider, person, through_dex):
    client = Client()
    callback = urlsplit(through_dex.at_dex(client, person()))
    state = dict(parse_qsl(callback.query))["state"]
    answer = client.get(callback.path, {"error": "access_denied", "error_description": "cancelled", "state": state})
    assert answer.status_code == 400 and "Dex did not sign you in (access_denied)" in answer.content.decode()
    assert audited("login.provider_failed", detail__contains="access_denied").exists()


def test_the_sign_in_page_offers_the_provider_first(provider, settings):
    page = Client().get("/login/?next=/orgs/").content.decode()
    assert page.index("Sign in with Dex") < page.index('name="password"')
    assert 'href="/login/provider/?next=/orgs/"' in page and "Or with a password" in page
    settings.ORGDNS_LOCAL_LOGIN = False
    settings.ORGDNS_BREAK_GLASS_USERS = ["admin"]
    assert "Break-glass account" in Client().get("/login/").content.decode()


def test_an_issuer_other_than_the_configured_one_is_refused(provider, settings):
    settings.ORGDNS_OIDC_ISSUER = provider.issuer + "/"  # the same discovery document, which names another issuer
    answer = Client().get("/login/provider/")
    assert answer.status_code == 502 and "Dex is not set up as orgdns expects" in answer.content.decode()
    assert audited("login.provider_failed", detail__contains="discovery says issuer").exists()
