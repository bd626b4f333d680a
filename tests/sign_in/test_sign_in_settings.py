"""The sign-in settings: checked at start, every refusal naming the variable; the client secret from a file."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from provisioning.services.people import identities
from tests.site.test_settings import load_settings

OIDC = {"ORGDNS_OIDC_ISSUER": "https://idp.example/realms/corp", "ORGDNS_OIDC_CLIENT_ID": "orgdns"}


@pytest.mark.parametrize(
    ("environment", "said"),
    [
        (
            {"ORGDNS_OIDC_ISSUER": "idp.example"},
            "ORGDNS_OIDC_ISSUER must be a URL like http://… or https://…, or empty",
        ),
        (OIDC, "ORGDNS_OIDC_CLIENT_ID and ORGDNS_OIDC_CLIENT_SECRET (or ORGDNS_OIDC_CLIENT_SECRET_FILE) must be set"),
        (
            {**OIDC, "ORGDNS_OIDC_CLIENT_SECRET": "s", "ORGDNS_OIDC_SCOPES": "email groups"},
            "ORGDNS_OIDC_SCOPES must include openid",
        ),
        ({"ORGDNS_OIDC_GROUP_PATTERN": "orgdns-{org}"}, "ORGDNS_OIDC_GROUP_PATTERN must hold {org} and {role} once"),
        ({"ORGDNS_OIDC_GROUP_MAP": "admins=superuser"}, "ORGDNS_OIDC_GROUP_MAP is not valid JSON"),
        ({"ORGDNS_OIDC_GROUP_MAP": '["superuser"]'}, "ORGDNS_OIDC_GROUP_MAP must be a JSON object"),
        (
            {"ORGDNS_OIDC_GROUP_MAP": '{"devs": ["acme:admin"]}'},
            "ORGDNS_OIDC_GROUP_MAP['devs']: 'acme:admin' is not a grant: use staff, superuser or ORG:ROLE",
        ),
        ({"ORGDNS_OIDC_GROUP_MAP": '{"devs": []}'}, "ORGDNS_OIDC_GROUP_MAP['devs'] must be a grant or a list of them"),
        ({"ORGDNS_OIDC_TIMEOUT": "10"}, "ORGDNS_OIDC_TIMEOUT must be 0.1 to 2.5, not 10.0"),
        ({"ORGDNS_OIDC_CLOCK_SKEW": "3600"}, "ORGDNS_OIDC_CLOCK_SKEW must be 0 to 300, not 3600"),
        ({"ORGDNS_LOCAL_LOGIN": "off"}, "ORGDNS_LOCAL_LOGIN is off and there is neither ORGDNS_OIDC_ISSUER nor"),
        ({"ORGDNS_SESSION_MAX_AGE": "0"}, "ORGDNS_SESSION_MAX_AGE must be more than 0, not 0"),
    ],
)
def test_a_bad_sign_in_setting_stops_the_start(monkeypatch, environment, said):
    with pytest.raises(ImproperlyConfigured) as refused:
        load_settings(monkeypatch, **environment)
    assert said in str(refused.value)


def test_the_client_secret_comes_from_a_file_and_the_mapping_is_parsed(monkeypatch, tmp_path):
    secret = tmp_path / "client-secret"
    secret.write_text("s3cret-from-file\n")
    loaded = load_settings(
        monkeypatch,
        **OIDC,
        ORGDNS_OIDC_CLIENT_SECRET_FILE=str(secret),
        ORGDNS_OIDC_GROUP_PATTERN="cn=orgdns-{org}-{role},ou=groups",
        ORGDNS_OIDC_GROUP_MAP='{"platform": "superuser", "dns team": ["staff", "acme:viewer"]}',
        ORGDNS_LOCAL_LOGIN="off",
        ORGDNS_BREAK_GLASS_USERS="admin, ops",
    )
    assert loaded["ORGDNS_OIDC_CLIENT_SECRET"] == "s3cret-from-file"
    assert loaded["ORGDNS_BREAK_GLASS_USERS"] == ["admin", "ops"]
    assert "https://idp.example" in loaded["SECURE_CSP"]["form-action"]  # the provider's logout, after a form
    monkeypatch.setattr("django.conf.settings.ORGDNS_OIDC_GROUP_PATTERN", loaded["ORGDNS_OIDC_GROUP_PATTERN"])
    monkeypatch.setattr("django.conf.settings.ORGDNS_OIDC_GROUP_MAP", loaded["ORGDNS_OIDC_GROUP_MAP"])
    roles, site = identities.grants(
        [
            "cn=orgdns-acme-viewer,ou=groups",
            "cn=orgdns-acme-owner,ou=groups",  # the highest role of a person's groups wins
            "cn=orgdns-globex-member,ou=groups",
            "cn=orgdns-Bad_Name-owner,ou=groups",  # not an organization name: no match
            "xcn=orgdns-initech-owner,ou=groups",  # matched whole, not inside
            "dns team",
        ]
    )
    assert roles == {"acme": "owner", "globex": "member"} and site == {"staff"}
    assert identities.grants(["platform"])[1] == {"superuser"}
