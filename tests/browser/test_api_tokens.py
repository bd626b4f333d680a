"""A person makes an API token on its page, copies it (shown once), uses it, revokes it; the API reference opens."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_make_use_and_revoke_a_token(live_server, page, login, personas):
    login(personas.alice, "pw-alice")
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("ci-deploy")
    page.get_by_label("Expires in").select_option("30")
    page.get_by_role("button", name="Make token").click()

    token = page.get_by_label("Your new token").input_value()
    assert token.startswith("odt_")
    me = page.request.get(f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.ok and me.json()["token_name"] == "ci-deploy"

    page.reload()  # the page never shows it again
    expect(page.get_by_label("Your new token")).to_have_count(0)
    assert token not in page.content()
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator("main")).to_contain_text("is revoked")
    refused = page.request.get(f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status == 401 and "revoked" in refused.json()["detail"]


def test_the_api_reference_opens(live_server, page, login, personas):
    login(personas.alice, "pw-alice")
    page.goto(f"{live_server.url}/api/v1/docs")
    expect(page.get_by_text("/api/v1/organizations/{org}/clusters").first).to_be_visible(timeout=15_000)
