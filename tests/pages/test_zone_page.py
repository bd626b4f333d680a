"""The zone page: records as Route53 has them, with the cluster that owns each."""

import re

import pytest
from django.core.cache import cache
from django.urls import reverse

from provisioning.clients import externaldns
from provisioning.models import Cluster, HostedZone
from provisioning.services.clusters import actions as clusters
from provisioning.services.metrics.counters import REMOTE_CALLS
from provisioning.services.zones import records as zones
from tests.clusters.test_deregister import _upsert, all_records, owned_records, write
from tests.conftest import run_jobs
from tests.factories import registered_rows

pytestmark = pytest.mark.django_db(transaction=True)


def test_records_show_their_owner_cluster_or_unmanaged_a_page_at_a_time(client, personas, cluster_api, aws):
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    cluster.refresh_from_db()
    zone = personas.acme.zones.get()
    write(aws, zone.zone_id, owned_records(cluster.owner_id, zone.name, 60, "app"))
    write(aws, zone.zone_id, owned_records("someone-else", zone.name, 1, "stray"))
    write(aws, zone.zone_id, [_upsert(f"manual.{zone.name}", "CNAME", "example.org")])

    client.force_login(personas.vera)
    page = client.get(reverse("zone", args=["acme"])).content.decode()
    assert 'hx-get="/orgs/acme/zone/records"' in page and zone.zone_id in page

    first = client.get(reverse("zone-records", args=["acme"])).content.decode()
    assert "record sets 1–100" in first  # of 125: 120 owned + 2 stray + 1 manual + SOA + NS
    assert f'href="/orgs/acme/clusters/{cluster.pk}/">prod</a>' in first
    following = re.search(r'hx-get="/orgs/acme/zone/records\?([^"]+)"[^>]*>next', first)[1].replace("&amp;", "&")
    assert "from=101" in following and "name=" in following and "type=" in following
    second = client.get(reverse("zone-records", args=["acme"]) + "?" + following).content.decode()
    assert "record sets 101–125, the last of the zone" in second and "next →" not in second
    assert "← first page" in second
    everything = first + second
    assert "manual.acme.orgdns.test." in everything and "unmanaged" in everything
    assert "owner someone-else" in everything
    assert everything.count("<tr>") == 125 + 2  # every record set once, and a header row per page


def route53_lists():
    """ListResourceRecordSets calls orgdns has made so far."""
    samples = [s for metric in REMOTE_CALLS.collect() for s in metric.samples if s.name.endswith("_total")]
    wanted = {"service": "route53", "operation": "ListResourceRecordSets"}
    return sum(s.value for s in samples if s.labels == wanted)


def marker(name, owner):
    return _upsert(name, "TXT", f'"heritage=external-dns,external-dns/owner={owner},external-dns/resource=service/x"')


def test_each_page_says_who_owns_its_records_as_the_whole_zone_does_whatever_the_page_boundaries(personas, aws):
    """Every page size from 1 on puts a page boundary between some record and its ownership marker: markers before
    their record (`<type>-<name>`), after it (ours, `_extdns-<type>.<name>`, and a record's own name), far from it
    (names Route53 lists in between); each page reads one page and at most a few markers, never the whole zone."""
    zone_id = aws.route53.create_hosted_zone(Name="acme.orgdns.test", CallerReference="paging")["HostedZone"]["Id"]
    zone = HostedZone.objects.create(
        organization=personas.acme, name="acme.orgdns.test", state=HostedZone.State.ACTIVE, zone_id=zone_id[12:]
    )
    prod = Cluster.objects.create(organization=personas.acme, name="prod", api_server="https://x", owner_id="acme-p")
    z = "acme.orgdns.test."
    write(
        aws,
        zone.zone_id,
        [
            _upsert(f"web.{z}", "A", "203.0.113.10"),
            marker(f"_extdns-a.web.{z}", "acme-p"),
            *[_upsert(f"{i}.web.{z}", "A", "203.0.113.9") for i in range(4)],  # listed between web and its marker
            _upsert(f"web-1.{z}", "A", "203.0.113.8"),  # '-' lists before '.' in Route53's order, after it in moto's
            _upsert(f"api.{z}", "CNAME", "lb.example."),
            marker(f"cname-api.{z}", "acme-edge"),
            *[_upsert(f"b{i}.{z}", "A", "203.0.113.7") for i in range(3)],  # between cname-api and api
            _upsert(f"old.{z}", "A", "203.0.113.11"),
            _upsert(f"old.{z}", "AAAA", "2001:db8::11"),
            marker(f"old.{z}", "acme-p"),
            _upsert(f"*.apps.{z}", "A", "203.0.113.12"),
            marker(f"_extdns-a.wildcard.apps.{z}", "acme-p"),
            _upsert(f"manual.{z}", "TXT", '"v=spf1 -all"'),
            _upsert(f"manual.{z}", "A", "203.0.113.13"),
        ],
    )
    whole_zone = all_records(aws, zone.zone_id)
    expected = {(rs["Name"], rs["Type"]): owner for (rs, owner) in _owners(whole_zone)}
    assert expected[(f"web.{z}", "A")] == "acme-p" and expected[(f"api.{z}", "CNAME")] == "acme-edge"
    assert expected[(f"old.{z}", "AAAA")] == "acme-p" and expected[(f"manual.{z}", "A")] is None

    for size in range(1, len(whole_zone) + 1):
        cache.clear()
        shown, start, before = {}, None, route53_lists()
        requests = 0
        while True:
            page = zones.record_page(zone, start, size)
            requests += 1
            shown |= {(r.name, r.type): r.owner_id for r in page.records}
            assert all(r.cluster == prod for r in page.records if r.owner_id == "acme-p")
            if page.following is None:
                break
            start = page.following
        assert shown == expected, f"pages of {size}"
        assert requests == -(-len(whole_zone) // size)
        assert route53_lists() - before <= 3 * requests, f"pages of {size}: at most two marker reads per page"


def _owners(record_sets):
    owners = externaldns.record_owners(record_sets)
    return [(rs, owners.get((rs["Name"], rs["Type"]))) for rs in record_sets]


def test_a_page_position_that_is_not_one_is_refused_with_the_reason(client, personas):
    registered_rows(personas.acme)
    client.force_login(personas.vera)
    url = reverse("zone-records", args=["acme"])
    outside = client.get(url + "?name=www.example.org.&type=A")
    assert outside.status_code == 400 and "is not a record name in acme.orgdns.test." in outside.content.decode()
    no_type = client.get(url + "?name=www.acme.orgdns.test.")
    assert no_type.status_code == 400 and "give both" in no_type.content.decode()
    bad_type = client.get(url + "?name=www.acme.orgdns.test.&type=XYZ")
    assert bad_type.status_code == 400 and "&#x27;XYZ&#x27; is not a Route53 record type" in bad_type.content.decode()


def test_other_organizations_zone_is_not_found(client, personas):
    registered_rows(personas.acme)
    client.force_login(personas.bob)
    assert client.get(reverse("zone", args=["acme"])).status_code == 404
    assert client.get(reverse("zone-records", args=["acme"])).status_code == 404


def test_an_organization_without_zone_says_so(client, personas):
    client.force_login(personas.alice)
    assert "has no hosted zone" in client.get(reverse("zone", args=["acme"])).content.decode()
    assert client.get(reverse("zone-records", args=["acme"])).status_code == 404
