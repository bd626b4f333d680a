"""A person in a browser: log in, register a cluster and watch it, see a failure and retry it, be refused."""

import re

import pytest
from playwright.sync_api import expect

from provisioning.clients.externaldns import orgdns_rules
from provisioning.models import Cluster

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_register_a_cluster_and_watch_it_become_ready(live_server, page, login, personas, cluster_api, worker):
    login(personas.alice, "pw-alice")
    page.get_by_role("link", name="acme").click()
    page.get_by_role("link", name="Register a cluster").first.click()
    page.get_by_label("Name").fill("edge")
    page.get_by_label("API server URL").fill(cluster_api.url)
    page.get_by_label("Cluster CA certificate (PEM)").fill(cluster_api.ca_pem)
    page.get_by_label("Bearer token").fill(cluster_api.token)
    page.get_by_role("button", name="Register").click()

    status = page.locator("#operation-status")
    expect(status.locator(".badge").first).to_have_text("succeeded", timeout=30_000)
    expect(status).to_contain_text("ready")
    expect(status.locator(".log")).to_contain_text("Deployment external-dns: created")
    page.reload()
    expect(page.locator("dd").first).to_contain_text("ready")


def test_see_a_failure_and_retry_it(live_server, page, login, personas, cluster_api, worker):
    from provisioning.services.clusters import actions as clusters

    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection, personas.alice)
    cluster_api.set_permissions([])  # the cluster's admin takes orgdns's permissions away, then gives them back
    login(personas.alice, "pw-alice")
    page.goto(f"{live_server.url}/orgs/acme/clusters/{cluster.pk}/")
    expect(page.get_by_role("alert")).to_contain_text("403", timeout=30_000)

    cluster_api.set_permissions(orgdns_rules())
    page.get_by_role("button", name="Retry provisioning").click()
    expect(page.locator("#operation-status .badge").first).to_have_text("succeeded", timeout=30_000)
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY


def test_another_organizations_page_is_refused(live_server, page, login, personas):
    login(personas.bob, "pw-bob")
    expect(page.locator("main")).not_to_contain_text("acme")
    response = page.goto(f"{live_server.url}/orgs/acme/")
    assert response.status == 404
    assert not re.search("Register a cluster", page.content())


def test_filter_and_sort_a_list_in_place(live_server, page, login, personas):
    for i, state in enumerate(["ready", "error", "ready"]):
        Cluster.objects.create(
            organization=personas.acme, name=f"edge-{i}", api_server="https://k", owner_id=f"o{i}", state=state
        )
    Cluster.objects.create(
        organization=personas.globex, name="edge-globex", api_server="https://k", owner_id="og", state="ready"
    )
    login(personas.alice, "pw-alice")
    page.goto(f"{live_server.url}/clusters/")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(3)  # globex's cluster is not alice's to see
    page.evaluate("window.notReloaded = true")

    page.get_by_label("State").select_option("error")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("edge-1")
    expect(page).to_have_url(re.compile(r"state=error"))

    page.get_by_label("State").select_option("")
    page.get_by_label("Search").fill("edge-2")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("edge-2")
    page.get_by_label("Search").fill("")
    expect(rows).to_have_count(3)
    by_name = page.locator("#results th a.sort", has_text="Cluster")
    by_name.click()
    expect(page.locator("#results th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    expect(rows.first).to_contain_text("edge-0")
    by_name.click()
    expect(page.locator("#results th[aria-sort]")).to_have_attribute("aria-sort", "descending")
    expect(rows.first).to_contain_text("edge-2")
    assert page.evaluate("window.notReloaded") is True  # every change happened in place
