"""The zone page: records as Route53 has them, with the cluster that owns each."""

import pytest
from django.urls import reverse

from provisioning.services.clusters import actions as clusters
from tests.clusters.test_deregister import _upsert, owned_records, write
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
    assert "1–100 of 125 record sets" in first  # 120 owned + 2 stray + 1 manual + SOA + NS
    assert f'href="/orgs/acme/clusters/{cluster.pk}/">prod</a>' in first
    assert "?page=2" in first
    second = client.get(reverse("zone-records", args=["acme"]) + "?page=2").content.decode()
    assert "101–125 of 125" in second
    everything = first + second
    assert "manual.acme.orgdns.test." in everything and "unmanaged" in everything
    assert "owner someone-else" in everything


def test_other_organizations_zone_is_not_found(client, personas):
    registered_rows(personas.acme)
    client.force_login(personas.bob)
    assert client.get(reverse("zone", args=["acme"])).status_code == 404
    assert client.get(reverse("zone-records", args=["acme"])).status_code == 404


def test_an_organization_without_zone_says_so(client, personas):
    client.force_login(personas.alice)
    assert "has no hosted zone" in client.get(reverse("zone", args=["acme"])).content.decode()
    assert client.get(reverse("zone-records", args=["acme"])).status_code == 404
