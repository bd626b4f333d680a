"""A person signs in through Dex's real login page (its LDAP connector reading the real OpenLDAP), in Chromium."""

import re
import uuid

import pytest
from playwright.sync_api import expect

from devstack.directory import Person, start_dex
from provisioning.models import Organization
from tests.sign_in.conftest import join, use_provider

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def dex_for_live_server(directory, live_server, settings, tmp_path):
    """A Dex of this test's own, whose client may return to the live server's address."""
    dex = start_dex(directory, tmp_path, [f"{live_server.url}/oidc/callback/"], log=open(tmp_path / "dex.log", "w"))
    use_provider(settings, dex)
    settings.ORGDNS_LOCAL_LOGIN = False
    settings.ORGDNS_BREAK_GLASS_USERS = ["admin"]
    yield dex
    dex.stop()


def test_sign_in_through_dex_login_page(live_server, page, directory, dex_for_live_server):
    Organization.objects.create(name="acme")
    uid = f"b{uuid.uuid4().hex[:8]}"
    person = Person(uid, f"pw-{uuid.uuid4().hex[:10]}", "Bea Browser", f"{uid}@example.com")
    directory.add_person(person)
    join(directory, "orgdns:acme:owner", uid)

    page.goto(f"{live_server.url}/orgs/acme/members/")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    expect(page.get_by_text("Break-glass account")).to_be_visible()  # passwords are off but for break-glass
    page.get_by_role("link", name="Sign in with Dex").click()

    expect(page).to_have_url(re.compile(re.escape(dex_for_live_server.issuer)))  # Dex's own login page
    page.locator("#login").fill(person.uid)
    page.locator("#password").fill(person.password)
    page.get_by_role("button", name="Login").click()

    expect(page).to_have_url(f"{live_server.url}/orgs/acme/members/")
    row = page.get_by_role("row").filter(has_text=person.uid)
    expect(row).to_contain_text("owner")
    expect(row).to_contain_text("directory")
    page.get_by_role("button", name=f"Log out {person.uid}").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
