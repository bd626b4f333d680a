"""List pages: scoping, search, filters, sorting, pagination, htmx partials and empty states."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from provisioning.models import Certificate, Cluster, HostedZone, Operation, Organization
from provisioning.views.list_spec import PAGE_SIZE
from provisioning.views.organizations import HOME_ORGANIZATIONS

pytestmark = pytest.mark.django_db

LISTS = ["organization-list", "cluster-list", "zone-list", "operation-list", "certificate-list"]


def make_cluster(org, name, state=Cluster.State.READY):
    return Cluster.objects.create(
        organization=org,
        name=name,
        api_server=f"https://{name}.{org.name}.example:6443",
        owner_id=f"{org.name}-{name}",
        state=state,
    )


def make_certificate(org, name, expires_in, state=Certificate.State.ACTIVE):
    not_after = timezone.now() + expires_in
    return Certificate.objects.create(
        organization=org,
        dns_names=[f"{name}.{org.zone_name}"],
        state=state,
        not_before=not_after - timedelta(days=90),
        not_after=not_after,
    )


@pytest.fixture
def world(personas):
    """acme: a delegated zone, a ready, a failing and a deregistered cluster, a certificate about to expire.
    globex: a zone being created, a provisioning cluster, a certificate valid for long."""
    acme, globex = personas.acme, personas.globex
    HostedZone.objects.create(organization=acme, name=acme.zone_name, state="active", zone_id="ZACME", delegated=True)
    HostedZone.objects.create(organization=globex, name=globex.zone_name, state=HostedZone.State.CREATING)
    prod = make_cluster(acme, "prod")
    staging = make_cluster(acme, "staging", Cluster.State.ERROR)
    make_cluster(acme, "retired", Cluster.State.DEREGISTERED)
    web = make_cluster(globex, "web", Cluster.State.PROVISIONING)
    Operation.objects.create(kind="register", organization=acme, cluster=prod, state=Operation.State.SUCCEEDED)
    Operation.objects.create(
        kind="register",
        organization=acme,
        cluster=staging,
        state="failed",
        error="The cluster API did not answer.",
    )
    Operation.objects.create(kind="register", organization=globex, cluster=web, state="running", progress=40)
    make_certificate(acme, "shop", timedelta(days=5))
    make_certificate(globex, "www", timedelta(days=80))
    return personas


def page(client, name, **params):
    response = client.get(reverse(name), params)
    assert response.status_code == 200, response.content.decode()
    return response.content.decode()


def results(body):
    """The results region of a list page: the rows, the pager and the empty state, without the navigation or the form."""
    return body[body.index('<div id="results"') :]


def row_links(body):
    """The names linked in the first column, in order."""
    return re.findall(r"<tr[^>]*>\s*<td><a href=\"[^\"]+\">([^<]+)</a>", results(body))


def test_anonymous_users_are_sent_to_login(client, world):
    for name in LISTS:
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith("/login/"), name


def test_members_see_only_their_organizations_rows(client, world):
    client.force_login(world.bob)
    for name in LISTS:
        body = results(page(client, name))
        assert "globex" in body and "acme" not in body, name
    for user in (world.alice, world.vera):
        client.force_login(user)
        for name in LISTS:
            body = results(page(client, name))
            assert "acme" in body and "globex" not in body, (user, name)


def test_staff_see_every_organizations_rows(client, world):
    client.force_login(world.sam)
    for name in LISTS:
        body = results(page(client, name))
        assert "acme" in body and "globex" in body, name


def test_users_without_an_organization_see_what_to_do_next(client, world):
    client.force_login(world.charlie)
    assert "Ask an organization owner or the platform team to add you" in page(client, "organization-list")
    assert "No clusters yet — register one from" in page(client, "cluster-list")
    assert "an organization's zone is created when its first cluster is registered" in page(client, "zone-list")
    assert "No operations yet" in page(client, "operation-list")
    assert "No certificates yet" in page(client, "certificate-list")
    for name in LISTS:
        assert "<table" not in results(page(client, name)), name


def test_a_search_without_match_offers_to_clear_the_filters(client, world):
    client.force_login(world.alice)
    body = results(page(client, "cluster-list", q="nothing-like-this"))
    assert "No match" in body and f'<a href="{reverse("cluster-list")}">Clear the filters</a>' in body
    assert "No clusters yet" not in body


def test_search_matches_every_word_in_any_searched_field(client, world):
    client.force_login(world.sam)
    assert row_links(page(client, "cluster-list", q="prod")) == ["prod"]
    assert row_links(page(client, "cluster-list", q="GLOBEX")) == ["web"]  # the organization's name
    assert row_links(page(client, "cluster-list", q="acme stag")) == ["staging"]
    assert row_links(page(client, "cluster-list", q="acme web")) == []
    assert row_links(page(client, "zone-list", q="zacme")) == ["acme.orgdns.test"]  # the zone id
    assert "www.globex" in results(page(client, "certificate-list", q="www"))
    assert "shop.acme" not in results(page(client, "certificate-list", q="www"))
    assert "did not answer" in results(page(client, "operation-list", q="not answer"))
    assert row_links(page(client, "organization-list", q="glob")) == ["globex"]


def test_filters_narrow_the_lists(client, world):
    client.force_login(world.sam)
    assert row_links(page(client, "cluster-list", state="error")) == ["staging"]
    assert row_links(page(client, "cluster-list", org="GLOBEX")) == ["web"]
    assert row_links(page(client, "cluster-list", org="acme", state="provisioning")) == []
    assert row_links(page(client, "operation-list", state="failed")) == ["Register cluster"]
    assert "staging" in results(page(client, "operation-list", state="failed"))
    assert row_links(page(client, "operation-list", kind="deregister")) == []
    delegated = results(page(client, "zone-list", delegated="no"))
    assert "globex.orgdns.test" in delegated and "acme.orgdns.test" not in delegated
    assert row_links(page(client, "organization-list", health="error")) == ["acme"]
    expiring = results(page(client, "certificate-list", expires="7"))
    assert "shop.acme" in expiring and "www.globex" not in expiring


def test_ended_rows_are_hidden_unless_their_state_is_chosen(client, world):
    client.force_login(world.alice)
    assert row_links(page(client, "cluster-list")) == ["prod", "staging"]
    assert row_links(page(client, "cluster-list", state="deregistered")) == ["retired"]
    assert "Any but deregistered" in page(client, "cluster-list")


def test_organizations_show_zone_and_cluster_health(client, world):
    client.force_login(world.alice)
    body = results(page(client, "organization-list"))
    assert "acme.orgdns.test" in body and "1 ready of 2" in body and "1 in error" in body


def test_a_bad_parameter_is_refused_naming_it(client, world):
    client.force_login(world.alice)
    for params, named in (
        ({"state": "exploded"}, "State:"),
        ({"sort": "api_server"}, "Sort:"),
        ({"kind": "x"}, "Kind:"),
    ):
        name = "operation-list" if "kind" in params else "cluster-list"
        response = client.get(reverse(name), params)
        body = response.content.decode()
        assert response.status_code == 400, params
        assert named in body and "is not one of the available choices" in body and "<tbody>" not in body


def test_sorting_by_a_column_header_and_reversing_it(client, world):
    client.force_login(world.sam)
    assert row_links(page(client, "cluster-list")) == ["prod", "staging", "web"]  # by organization
    assert row_links(page(client, "cluster-list", sort="name")) == ["prod", "staging", "web"]
    assert row_links(page(client, "cluster-list", sort="-name")) == ["web", "staging", "prod"]
    body = page(client, "cluster-list", sort="name", q="a")
    assert '<th aria-sort="ascending"><a class="sort" href="?sort=-name&amp;q=a"' in body  # a second click reverses
    assert 'href="?sort=state&amp;q=a"' in body  # another column, keeping the search


def test_sorting_by_state_and_by_count(client, world):
    client.force_login(world.sam)
    assert row_links(page(client, "cluster-list", sort="state")) == [
        "staging",
        "web",
        "prod",
    ]  # error, provisioning, ready
    assert row_links(page(client, "organization-list", sort="-clusters")) == ["acme", "globex"]
    assert row_links(page(client, "organization-list", sort="clusters")) == ["globex", "acme"]


def test_pages_of_25_keep_the_filters(client, world):
    Cluster.objects.bulk_create(
        [
            Cluster(organization=world.acme, name=f"node-{i:02}", api_server="https://n.example", owner_id=f"n{i}")
            for i in range(30)
        ]
    )
    client.force_login(world.alice)
    first = page(client, "cluster-list", q="node", sort="name")
    assert row_links(first) == [f"node-{i:02}" for i in range(PAGE_SIZE)]
    assert "Page 1 of 2 · 30 in all" in first
    assert 'href="?q=node&amp;sort=name&amp;page=2"' in first
    second = page(client, "cluster-list", q="node", sort="name", page=2)
    assert row_links(second) == [f"node-{i:02}" for i in range(PAGE_SIZE, 30)]
    assert 'rel="prev"' in second and 'rel="next"' not in second


def test_htmx_requests_get_only_the_results(client, world):
    client.force_login(world.alice)
    for name in LISTS:
        response = client.get(reverse(name), {"q": "acme"}, headers={"HX-Request": "true"})
        body = response.content.decode()
        assert response.status_code == 200
        assert body.lstrip().startswith('<div id="results"'), name
        assert "<html" not in body and 'id="list-filters"' not in body and "<nav>" not in body


def test_the_filter_form_updates_the_results_in_place(client, world):
    client.force_login(world.alice)
    body = page(client, "cluster-list", sort="-name")
    form = re.search(r'<form id="list-filters"[^>]*>', body).group(0)
    assert 'hx-get="/clusters/"' in form and 'hx-trigger="input changed delay:300ms, change"' in form
    # The form and the sort and page links inherit where the results go, and the URL they push.
    wrapper = re.search(r'<div class="listing"[^>]*>', body).group(0)
    for attribute in ('hx-target="#results"', 'hx-swap="outerHTML"', 'hx-push-url="true"', 'hx-sync="this:replace"'):
        assert attribute in wrapper
    assert body.index(wrapper) < body.index(form) < body.index('<div id="results"')
    # The current sort rides along with the filters from inside the results.
    assert '<input type="hidden" name="sort" value="-name" form="list-filters"' in results(body)


@pytest.mark.integration
def test_home_shows_the_first_organizations_and_links_to_the_list(client, world):
    Organization.objects.bulk_create([Organization(name=f"org{i:02}") for i in range(HOME_ORGANIZATIONS)])
    client.force_login(world.sam)
    body = page(client, "home")
    assert "acme" in body and "org22" in body and "org23" not in body  # by name: acme, globex, org00…org22
    assert f'<a href="{reverse("organization-list")}">All {HOME_ORGANIZATIONS + 2} organizations →</a>' in body
    client.force_login(world.alice)
    assert "organizations →" not in page(client, "home")


def test_restoring_history_gets_the_whole_page(client, world):
    client.force_login(world.alice)
    response = client.get(reverse("cluster-list"), headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in response.content.decode()
    assert "HX-Request" in response["Vary"]


def test_the_organization_page_links_to_all_its_operations(client, world):
    client.force_login(world.alice)
    body = client.get(reverse("organization", args=["acme"])).content.decode()
    assert f'href="{reverse("operation-list")}?org=acme"' in body
    assert row_links(page(client, "operation-list", org="acme")) == ["Register cluster", "Register cluster"]


def test_every_time_shown_is_in_utc_and_says_so_whatever_the_servers_time_zone(client, world, settings):
    """Lists, details and the GC and billing pages all show UTC, marked "UTC", in a <time> with the instant."""
    settings.TIME_ZONE = "America/New_York"  # 12:34 UTC is 08:34 there in July
    instant = datetime(2026, 7, 1, 12, 34, 56, tzinfo=UTC)
    HostedZone.objects.update(created_at=instant)
    Organization.objects.update(created_at=instant)
    operation = Operation.objects.filter(organization__name="acme").first()
    Operation.objects.filter(pk=operation.pk).update(created_at=instant)
    certificate = Certificate.objects.get(organization__name="acme")
    Certificate.objects.filter(pk=certificate.pk).update(not_before=instant, not_after=instant + timedelta(days=90))
    shown = '<time datetime="2026-07-01T12:34:56Z">2026-07-01 12:34 UTC</time>'

    client.force_login(world.sam)
    assert shown in page(client, "zone-list")
    assert '<time datetime="2026-07-01T12:34:56Z">2026-07-01 UTC</time>' in page(client, "organization-list")
    assert shown in client.get(reverse("operation", args=[operation.pk])).content.decode()
    detail = client.get(reverse("certificate", args=["acme", certificate.pk])).content.decode()
    assert shown in detail and '<time datetime="2026-09-29T12:34:56Z">2026-09-29 12:34 UTC</time>' in detail
    everything = "".join(page(client, name) for name in LISTS)
    assert "08:34" not in everything + detail
