"""Pages: what each persona may see and do, registering through the form, live status, the admin."""

import pytest
from django.urls import reverse

from provisioning.models import Cluster, Operation
from provisioning.services.clusters import actions as clusters
from tests.conftest import run_jobs
from tests.factories import registered_rows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def acme_cluster(personas):
    """What alice's registration of acme's cluster left: its zone, the ready cluster, the succeeded operation."""
    return registered_rows(personas.acme, "prod", personas.alice)


def pages_of(cluster):
    operation = cluster.operations.first()
    return [
        reverse("organization", args=[cluster.organization.name]),
        reverse("cluster", args=[cluster.organization.name, cluster.pk]),
        reverse("cluster-register", args=[cluster.organization.name]),
        reverse("operation", args=[operation.pk]),
        reverse("operation-status", args=[operation.pk]),
    ]


def test_anonymous_users_are_sent_to_login(client, acme_cluster):
    for url in [reverse("home"), *pages_of(acme_cluster)]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_what_anonymous_requests_get(client, settings):
    """LoginRequiredMiddleware sends pages to the login; what authenticates on its own answers for itself."""
    settings.ORGDNS_METRICS_TOKEN = "scrape-token"
    assert client.get(reverse("api-tokens"))["Location"].startswith("/login/")
    assert client.get(reverse("certificate-list"))["Location"].startswith("/login/")
    assert client.get(reverse("login")).status_code == 200
    assert client.get(reverse("healthz")).status_code == 200
    assert client.get(reverse("metrics")).status_code == 401
    assert client.get("/api/v1/organizations").status_code == 401
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/admin/")["Location"].startswith("/admin/login/")
    assert client.get("/admin/login/").status_code == 200
    assert client.post(reverse("logout"))["Location"] == reverse("login")


def test_members_see_their_organization(client, personas, acme_cluster):
    for user in (personas.alice, personas.vera, personas.sam):
        client.force_login(user)
        for url in pages_of(acme_cluster)[:2] + pages_of(acme_cluster)[3:]:
            assert client.get(url).status_code in (200, 286), (user, url)


def test_other_organizations_objects_are_not_found(client, personas, acme_cluster):
    for user in (personas.bob, personas.charlie):
        client.force_login(user)
        for url in pages_of(acme_cluster):
            assert client.get(url).status_code == 404, (user, url)
        post = client.post(reverse("cluster-deregister", args=["acme", acme_cluster.pk]))
        assert post.status_code == 404
    # The right organization name with another organization's cluster id is not found either.
    client.force_login(personas.bob)
    assert client.get(reverse("cluster", args=["globex", acme_cluster.pk])).status_code == 404
    acme_cluster.refresh_from_db()
    assert acme_cluster.state == Cluster.State.READY


def test_home_lists_only_the_users_organizations(client, personas, acme_cluster):
    client.force_login(personas.bob)
    body = client.get(reverse("home")).content.decode()
    assert "globex" in body and "acme" not in body
    client.force_login(personas.alice)
    body = client.get(reverse("home")).content.decode()
    assert "acme" in body and "globex" not in body


def test_viewers_cannot_act(client, personas, acme_cluster):
    client.force_login(personas.vera)
    assert client.get(reverse("cluster-register", args=["acme"])).status_code == 403
    assert client.post(reverse("cluster-deregister", args=["acme", acme_cluster.pk])).status_code == 403
    assert client.post(reverse("cluster-reprovision", args=["acme", acme_cluster.pk])).status_code == 403
    assert "Deregister" not in client.get(reverse("cluster", args=["acme", acme_cluster.pk])).content.decode()
    assert Operation.objects.count() == 1


def test_only_staff_create_organizations(client, personas):
    from tests.pages.test_staff import grant

    client.force_login(personas.alice)
    assert client.post(reverse("organization-create"), {"name": "initech"}).status_code == 403
    client.force_login(grant(personas.sam, "add_organization"))
    response = client.post(reverse("organization-create"), {"name": "initech"})
    assert response.status_code == 302
    response = client.post(reverse("organization-create"), {"name": "Bad_Name"})
    assert "is not a DNS label" in response.content.decode()


def test_organization_page_shows_zone_credentials_and_clusters(client, personas, acme_cluster):
    zone = acme_cluster.organization.zones.get()
    client.force_login(personas.alice)
    body = client.get(reverse("organization", args=["acme"])).content.decode()
    for shown in (zone.name, zone.zone_id, zone.name_servers[0], "orgdns-acme", zone.access_key_id, "prod", "ready"):
        assert shown in body


def test_register_through_the_form_and_watch_it_finish(client, personas, cluster_api):
    client.force_login(personas.alice)
    response = client.post(
        reverse("cluster-register", args=["acme"]),
        {"name": "edge", "api_server": cluster_api.url, "token": cluster_api.token, "ca_pem": cluster_api.ca_pem},
    )
    assert response.status_code == 302
    cluster = Cluster.objects.get(name="edge")
    operation = cluster.operations.get()
    page = client.get(response["Location"]).content.decode()
    assert f'hx-get="{reverse("operation-status", args=[operation.pk])}"' in page
    assert 'hx-trigger="every 2s"' in page

    polling = client.get(reverse("operation-status", args=[operation.pk]))
    assert polling.status_code == 200 and "queued" in polling.content.decode()
    run_jobs()
    done = client.get(reverse("operation-status", args=[operation.pk]))
    assert done.status_code == 286  # htmx stops polling
    assert "succeeded" in done.content.decode() and "hx-get" not in done.content.decode()


def test_register_form_with_a_kubeconfig_upload(client, personas, cluster_api):
    import base64

    import yaml
    from django.core.files.uploadedfile import SimpleUploadedFile

    config = {
        "current-context": "x",
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "clusters": [
            {
                "name": "x",
                "cluster": {
                    "server": cluster_api.url,
                    "certificate-authority-data": base64.b64encode(cluster_api.ca_pem.encode()).decode(),
                },
            }
        ],
        "users": [{"name": "x", "user": {"token": cluster_api.token}}],
    }
    client.force_login(personas.alice)
    upload = SimpleUploadedFile("kubeconfig", yaml.safe_dump(config).encode())
    response = client.post(reverse("cluster-register", args=["acme"]), {"name": "edge", "kubeconfig": upload})
    assert response.status_code == 302
    assert Cluster.objects.get(name="edge").api_server == cluster_api.url


def test_register_form_shows_why_a_cluster_was_refused(client, personas, cluster_api):
    client.force_login(personas.alice)
    response = client.post(
        reverse("cluster-register", args=["acme"]),
        {"name": "edge", "api_server": cluster_api.url, "token": "nope", "ca_pem": cluster_api.ca_pem},
    )
    assert response.status_code == 200
    assert "refused our token" in response.content.decode()
    assert not Cluster.objects.exists()


def test_failed_cluster_can_be_retried_from_its_page(client, personas, cluster_api, aws_faults):
    aws_faults.error("iam", "CreateUser", "LimitExceeded", times=1, status=409)
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    client.force_login(personas.alice)
    page = client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()
    assert "Retry provisioning" in page and "LimitExceeded" in page
    client.post(reverse("cluster-reprovision", args=["acme", cluster.pk]))
    run_jobs()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY


def test_admin_is_staff_only(client, personas, acme_cluster):
    client.force_login(personas.alice)
    assert client.get("/admin/provisioning/cluster/").status_code == 302
    client.force_login(personas.sam)
    personas.sam.is_superuser = True
    personas.sam.save()
    for model in ("organization", "membership", "hostedzone", "cluster", "operation"):
        assert client.get(f"/admin/provisioning/{model}/?q=acme").status_code == 200, model
    assert "prod" in client.get("/admin/provisioning/cluster/?q=prod").content.decode()


def test_pages_send_security_headers(client, personas):
    client.force_login(personas.alice)
    response = client.get(reverse("home"))
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_failed_operation_is_retried_from_its_page(client, personas, cluster_api, aws_faults):
    aws_faults.error("iam", "CreateUser", "LimitExceeded", times=1, status=409)
    cluster, failed = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    client.force_login(personas.vera)
    assert "Retry</button>" not in client.get(reverse("operation", args=[failed.pk])).content.decode()
    assert client.post(reverse("operation-retry", args=[failed.pk])).status_code == 403
    client.force_login(personas.bob)
    assert client.post(reverse("operation-retry", args=[failed.pk])).status_code == 404

    client.force_login(personas.alice)
    assert "Retry</button>" in client.get(reverse("operation", args=[failed.pk])).content.decode()
    response = client.post(reverse("operation-retry", args=[failed.pk]))
    retried = Operation.objects.exclude(pk=failed.pk).get()
    assert response["Location"] == reverse("operation", args=[retried.pk])
    run_jobs()
    retried.refresh_from_db()
    assert retried.state == Operation.State.SUCCEEDED
    # The old failure cannot be retried a second time.
    client.post(reverse("operation-retry", args=[failed.pk]))
    assert Operation.objects.count() == 2


def test_home_shows_health_and_what_needs_attention(client, personas, acme_cluster, make_cluster_api):
    from datetime import timedelta

    from django.utils import timezone

    from provisioning.models import Certificate

    broken = make_cluster_api()
    cluster, _ = clusters.register_cluster(personas.acme, "edge", broken.connection)
    broken.revoke_token()
    run_jobs()
    Certificate.objects.create(
        organization=personas.acme,
        dns_names=["soon.acme.orgdns.test"],
        state="active",
        not_before=timezone.now() - timedelta(days=87),
        not_after=timezone.now() + timedelta(days=3),
    )
    Certificate.objects.create(organization=personas.globex, dns_names=["theirs.globex.orgdns.test"], state="error")

    client.force_login(personas.alice)
    body = client.get(reverse("home")).content.decode()
    assert "Needs attention" in body
    assert f'href="/orgs/acme/clusters/{cluster.pk}/">acme/edge</a>' in body and "refused our token" in body
    assert "soon.acme.orgdns.test" in body and "1 expiring</span>" in body
    assert "theirs.globex" not in body
    assert "delegated" in body and "1 ready of 2" in body and "1 in error" in body
    assert "kept</span> in use" in body  # the zone's garbage collection state

    client.force_login(personas.charlie)
    assert "Needs attention" not in client.get(reverse("home")).content.decode()
