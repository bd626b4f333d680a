"""The Route53 budget page (staff): per account, the fleet's modelled and orgdns's measured calls against the budget,
the quotas, the resync interval; and "Needs attention" on the home page above ORGDNS_BUDGET_ATTENTION."""

import dataclasses

import pytest
from django.urls import reverse

from provisioning.models import Cluster, HostedZone, Organization
from provisioning.rules import budget
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.aws_accounts import route53_budget
from provisioning.services.backends import Backends

pytestmark = pytest.mark.django_db(transaction=True)


def zones(*names, deleted=()):
    for name in (*names, *deleted):
        org = Organization.objects.get_or_create(name=name)[0]
        HostedZone.objects.create(
            organization=org,
            name=org.zone_name,
            zone_id=f"Z{name.upper()}",
            iam_user_name=f"orgdns-{name}",
            state=HostedZone.State.DELETED if name in deleted else HostedZone.State.ACTIVE,
        )


def clusters(org, count, flags=None, state=Cluster.State.READY, prefix="c"):
    stored = dataclasses.asdict(flags) if flags else None
    return Cluster.objects.bulk_create(
        [
            Cluster(
                organization=org,
                name=f"{prefix}{i}",
                api_server="https://k.example:6443",
                owner_id=f"{org.name}-{prefix}{i}",
                state=state,
                externaldns_flags=stored,
            )
            for i in range(count)
        ]
    )


def route53_requests(count):
    """Send Route53 (moto) `count` requests or a little more, as orgdns does; returns how many were sent."""
    backends = Backends()
    while backends.stats.calls["route53"] < count:
        backends.route53().find_zone("acme.orgdns.test")
    return backends.stats.calls["route53"]


@pytest.mark.integration
def test_the_page_shows_the_accounts_budget_quotas_and_intervals_to_staff(client, personas):
    zones("acme", "globex", deleted=["initech"])
    plan = accounts.budget_of(accounts.main())
    short, long = budget.cluster_flags(60, budget=plan), budget.cluster_flags(120, budget=plan)
    clusters(personas.acme, 2, short)
    clusters(personas.globex, 1, long)
    clusters(personas.globex, 1, state=Cluster.State.PENDING, prefix="new")  # not deployed yet: flags not known
    clusters(personas.globex, 3, short, state=Cluster.State.DEREGISTERED, prefix="gone")
    sent = route53_requests(3)

    (figures,) = route53_budget.account_budgets()
    interval = budget.resync_interval(4, 2, plan)
    modelled = (
        sum(
            n * budget.calls_per_hour(flags, 2, 300, 6)
            for flags, n in [(short, 2), (long, 1), (budget.cluster_flags(interval, budget=plan), 1)]
        )
        / 3600
    )
    assert figures.load.fleet_rate == pytest.approx(modelled)
    assert (figures.clusters, figures.zones, figures.unknown, figures.running, figures.interval) == (
        4,
        2,
        1,
        (60, 120),
        interval,
    )
    assert (figures.load.zones, figures.load.iam_users, figures.load.zone_quota, figures.load.iam_user_quota) == (
        2,
        2,
        500,
        5000,
    )
    assert figures.measured_requests == sent and 0 < figures.load.orgdns_rate <= sent / (14 * 60)
    assert figures.load.fleet_budget == pytest.approx(6) and figures.load.orgdns_budget == pytest.approx(3)
    assert figures.attention == []

    client.force_login(personas.sam)  # staff, without the permission to act: looking is enough
    body = client.get(reverse("route53-budget")).content.decode()
    assert 'href="/route53-budget/" aria-current="page"' in body
    assert "Account main" in body and "ExternalDNS of 4 clusters (estimated)" in body
    assert f"<td>{figures.load.fleet_rate:.2f}</td><td>6.00</td>" in body
    assert f"measured: {sent} requests in the last 15 min" in body
    assert "Hosted zones (orgdns's)</td><td>2</td><td>500</td><td>0 %</td>" in body
    assert f"resync every <strong>{interval} s</strong> (each cluster up to 10 % longer" in body
    assert "Deployed with: 60–120 s." in body
    assert "1 cluster runs with flags orgdns has not recorded" in body
    assert 'state-error">above' not in body


def attention(client, page="home"):
    body = client.get(reverse(page)).content.decode()
    return "Route53 budget</span>" in body if page == "home" else 'state-error">above 80 %' in body


@pytest.mark.integration
def test_an_account_needs_attention_above_80_percent_of_a_quota_or_budget_and_not_at_it(client, personas, settings):
    client.force_login(personas.sam)
    # Hosted zones: 4 of 5 is 80 %, not above; the fifth is.
    settings.ORGDNS_ROUTE53_ZONE_QUOTA = 5
    zones("a", "b", "c", "d")
    assert not attention(client) and not attention(client, "route53-budget")
    zones("e")
    assert attention(client) and attention(client, "route53-budget")
    assert "5 hosted zones of the quota of 5 (100%)" in client.get(reverse("home")).content.decode()
    client.force_login(personas.alice)  # tenants are not told
    assert not attention(client)
    client.force_login(personas.sam)
    settings.ORGDNS_ROUTE53_ZONE_QUOTA = 500

    # The fleet's estimate: a rate at which 4 clusters spend 70 % of the fleet's share, so 5 spend 87.5 %.
    flags = budget.cluster_flags(60, budget=accounts.budget_of(accounts.main()))
    per_cluster = budget.calls_per_hour(flags, 5, 300, 6) / 3600
    settings.ORGDNS_ROUTE53_ACCOUNT_RATE = 4 * per_cluster / 0.7 / settings.ORGDNS_ROUTE53_FLEET_SHARE
    clusters(personas.acme, 4, flags)
    assert not attention(client)
    clusters(personas.acme, 1, flags, prefix="more")
    assert (
        attention(client) and "the ExternalDNS fleet&#x27;s estimated" in client.get(reverse("home")).content.decode()
    )
    Cluster.objects.filter(name="more0").update(state=Cluster.State.DEREGISTERED)
    assert not attention(client)

    # orgdns's measured rate, over the last 15 minutes (the current one so far, so 14 to 15 minutes of it).
    sent = route53_requests(1)
    settings.ORGDNS_ROUTE53_RATE = sent / (14 * 60) / 0.8 * 1.1
    assert not attention(client)
    settings.ORGDNS_ROUTE53_RATE = sent / (15 * 60) / 0.8 * 0.9
    assert attention(client) and "orgdns&#x27;s measured" in client.get(reverse("home")).content.decode()
