"""A request refused for reaching into another organization, or for acting without the right, leaves an audit record."""

import pytest
from django.urls import reverse

from provisioning.models import AuditEvent, Certificate, Cluster, Operation
from provisioning.services.clusters import actions as clusters
from tests.conftest import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def acme(personas, cluster_api):
    cluster, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.connection, personas.alice)
    run_jobs()
    certificate = Certificate.objects.create(
        organization=personas.acme, dns_names=["www.acme.orgdns.test"], state="active"
    )
    return cluster, operation, certificate


def refusals():
    return AuditEvent.objects.filter(action="access.refused").order_by("id")


def test_reaching_into_another_organization_is_refused_and_recorded(client, personas, acme):
    cluster, operation, certificate = acme
    client.force_login(personas.bob)
    attempts = [
        ("get", reverse("organization", args=["acme"]), ("organization", str(personas.acme.pk))),
        ("post", reverse("cluster-deregister", args=["acme", cluster.pk]), ("cluster", str(cluster.pk))),
        ("post", reverse("rotate-key", args=["acme"]), ("organization", str(personas.acme.pk))),
        ("get", reverse("cluster", args=["globex", cluster.pk]), ("cluster", str(cluster.pk))),  # under bob's own org
        ("get", reverse("operation", args=[operation.pk]), ("operation", str(operation.pk))),
        ("get", reverse("certificate", args=["acme", certificate.pk]), ("certificate", str(certificate.pk))),
        ("post", reverse("organization-offboard", args=["acme"]), ("organization", str(personas.acme.pk))),
    ]
    for method, url, (object_type, object_id) in attempts:
        assert getattr(client, method)(url).status_code == 404, url
        event = refusals().last()
        assert (event.actor, event.outcome, event.source) == (personas.bob, AuditEvent.Outcome.REFUSED, "ui"), url
        # Staff only (no organization): the organization probed did not ask for a stranger's entries in its trail.
        assert (event.object_type, event.object_id, event.organization) == (object_type, object_id, None), url
        assert event.detail == f"{object_type} {object_id} of organization acme: not visible to bob", url
    assert refusals().count() == len(attempts)
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY

    # Staff see who reached for acme's things; neither acme's owner nor bob see these events.
    for persona, sees in ((personas.sam, True), (personas.alice, False), (personas.bob, False)):
        client.force_login(persona)
        page = client.get(reverse("audit-list"), {"outcome": "refused"}).content.decode()
        assert ("not visible to bob" in page) is sees, persona


def test_what_does_not_exist_or_is_ones_own_is_not_a_refusal(client, personas, acme):
    cluster, _, _ = acme
    client.force_login(personas.alice)
    assert client.get(reverse("cluster", args=["acme", 999999])).status_code == 404
    assert client.get(reverse("organization", args=["initech"])).status_code == 404
    assert (
        client.get(reverse("cluster", args=["globex", cluster.pk])).status_code == 404
    )  # alice's own cluster, wrong URL
    assert not refusals().exists()


def test_acting_without_the_right_is_refused_and_recorded(client, personas, acme):
    cluster, operation, _ = acme
    client.force_login(personas.vera)  # a viewer of acme
    assert client.post(reverse("cluster-deregister", args=["acme", cluster.pk])).status_code == 403
    assert client.post(reverse("members", args=["acme"]), {"username": "charlie", "role": "owner"}).status_code == 403
    assert client.post(reverse("rotate-key", args=["acme"])).status_code == 403
    assert client.post(reverse("organization-offboard", args=["acme"]), {"confirmation": "acme"}).status_code == 403
    details = [(e.actor, e.organization, e.outcome) for e in refusals()]
    assert details == [(personas.vera, personas.acme, "refused")] * 4
    assert refusals().last().detail == "POST /orgs/acme/delete: vera may not delete acme"
    assert "may look at acme but not change it" in refusals().first().detail
    assert Operation.objects.count() == 1

    client.force_login(personas.charlie)
    assert client.post(reverse("organization-create"), {"name": "initech"}).status_code == 403
    event = refusals().last()
    assert (event.actor, event.organization, event.detail) == (
        personas.charlie,
        None,
        "create an organization: charlie may not",
    )
