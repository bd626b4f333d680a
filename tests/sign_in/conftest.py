"""The real identity provider of the sign-in tests: OpenLDAP (slapd) holding the people and groups, and Dex reading
them through its LDAP connector (devstack/directory.py)."""

import re
import uuid
from html import unescape
from types import SimpleNamespace
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from devstack.directory import Person, start_dex
from provisioning.services.people import sign_in

CALLBACK = "http://testserver/oidc/callback/"


@pytest.fixture(scope="session")
def dex(directory, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dex")
    running = start_dex(directory, workdir, [CALLBACK], log=open(workdir / "dex.log", "w"))
    yield running
    running.stop()


def use_provider(settings, dex):
    settings.ORGDNS_OIDC_ISSUER = dex.issuer
    settings.ORGDNS_OIDC_CLIENT_ID = dex.client_id
    settings.ORGDNS_OIDC_CLIENT_SECRET = dex.client_secret
    settings.ORGDNS_OIDC_PROVIDER_NAME = "Dex"
    settings.ORGDNS_OIDC_GROUP_PATTERN = settings_pattern("orgdns:{org}:{role}")
    settings.ORGDNS_OIDC_GROUP_MAP = {"platform-admins": ["superuser"], "platform-support": ["staff"]}
    sign_in.forget_provider()


def settings_pattern(value):
    from orgdns_site.environment import group_pattern

    return group_pattern(value)


@pytest.fixture
def provider(settings, dex):
    """orgdns signs in through the session's Dex, groups mapped by orgdns:{org}:{role} and a table."""
    use_provider(settings, dex)
    yield dex
    sign_in.forget_provider()


@pytest.fixture
def person(directory):
    """person(*groups) -> a new person of the directory (a name of this test's own), in those groups."""

    def make(*groups, name="Pat Doe"):
        uid = f"p{uuid.uuid4().hex[:8]}"
        someone = Person(uid=uid, password=f"pw-{uuid.uuid4().hex[:10]}", name=name, email=f"{uid}@example.com")
        directory.add_person(someone)
        for group in groups:
            join(directory, group, uid)
        return someone

    return make


def join(directory, group, uid):
    directory.join(group, uid)


def at_dex(client, person, next_url=None):
    """Begin a sign-in at orgdns (the Django test client), sign in on Dex's own login page (over HTTP), and return
    the callback URL Dex sends the browser back to (not yet followed)."""
    start = client.get("/login/provider/", {"next": next_url} if next_url else {})
    assert start.status_code == 302, start.content
    browser = requests.Session()
    page = browser.get(start["Location"], timeout=10)
    assert page.status_code == 200 and 'name="password"' in page.text, page.text[:500]
    action = unescape(re.search(r'<form method="post" action="([^"]*)"', page.text)[1])
    answer = browser.post(
        urljoin(page.url, action), data={"login": person.uid, "password": person.password}, allow_redirects=False
    )
    while answer.status_code in (302, 303) and not answer.headers["Location"].startswith(CALLBACK):
        answer = browser.get(urljoin(answer.url, answer.headers["Location"]), allow_redirects=False, timeout=10)
    assert answer.status_code in (302, 303), answer.text[:500]
    return answer.headers["Location"]


def sign_in_at_dex(client, person, next_url=None):
    """The whole round trip: orgdns's answer to Dex's callback."""
    callback = urlsplit(at_dex(client, person, next_url))
    return client.get(f"{callback.path}?{callback.query}")


@pytest.fixture
def through_dex():
    return SimpleNamespace(at_dex=at_dex, sign_in=sign_in_at_dex)
