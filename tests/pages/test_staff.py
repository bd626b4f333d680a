"""Staff see every organization; only staff with the support permission (or superusers) change anything."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from provisioning.models import AuditEvent, Certificate, Cluster, Membership, Operation, Organization
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import actions as clusters
from tests.conftest import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def grant(user, *codenames):
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="provisioning", codename__in=codenames)
    )
    return type(user).objects.get(pk=user.pk)  # a fresh instance: permissions are cached per instance


@pytest.fixture
def acme(personas, cluster_api):
    cluster_api.allow_certificates("web")
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection, personas.alice)
    certificate, _ = certificates.issue_certificate(
        personas.acme, ["www.acme.orgdns.test"], [(cluster, "web", "www-tls")]
    )
    run_jobs()
    cluster.refresh_from_db()
    certificate.refresh_from_db()
    assert cluster.state == Cluster.State.READY and certificate.state == Certificate.State.ACTIVE
    return cluster, certificate


def actions(cluster, certificate):
    """Every state-changing request of the pages on acme, with a body that would succeed for a writer."""
    org = cluster.organization.name
    operation = cluster.operations.first()
    vera = Membership.objects.get(user__username="vera")
    return [
        (reverse("cluster-register", args=[org]), {"name": "edge", "api_server": "https://127.0.0.1:1", "token": "t"}),
        (reverse("cluster-reprovision", args=[org, cluster.pk]), {}),
        (reverse("cluster-deregister", args=[org, cluster.pk]), {}),
        (reverse("operation-retry", args=[operation.pk]), {}),
        (reverse("certificate-issue", args=[org]), {"dns_names": "api.acme.orgdns.test"}),
        (
            reverse("certificate-install", args=[org, certificate.pk]),
            {"cluster": cluster.pk, "namespace": "x", "secret_name": "y"},
        ),
        (reverse("certificate-renew", args=[org, certificate.pk]), {}),
        (reverse("certificate-delete", args=[org, certificate.pk]), {}),
        (reverse("members", args=[org]), {"username": "charlie", "role": "owner"}),
        (reverse("member-remove", args=[org, vera.pk]), {}),
        (reverse("rotate-key", args=[org]), {}),
        (reverse("organization-create"), {"name": "initech"}),
        (reverse("organization-offboard", args=[org]), {"confirmation": org}),
    ]


def test_staff_without_the_permission_see_everything_and_change_nothing(client, personas, acme):
    cluster, certificate = acme
    client.force_login(personas.sam)
    for url in [
        reverse("organization", args=["acme"]),
        reverse("organization", args=["globex"]),
        reverse("cluster", args=["acme", cluster.pk]),
        reverse("certificate", args=["acme", certificate.pk]),
        reverse("members", args=["acme"]),
        reverse("operation", args=[cluster.operations.first().pk]),
    ]:
        assert client.get(url).status_code == 200, url
    for page, hidden in [
        (reverse("home"), "New organization"),
        (reverse("organization", args=["acme"]), "Register a cluster"),
        (reverse("organization", args=["acme"]), "Rotate the access key"),
        (reverse("organization", args=["acme"]), "Delete organization"),
        (reverse("cluster", args=["acme", cluster.pk]), "Deregister"),
        (reverse("certificate", args=["acme", certificate.pk]), "Renew now"),
        (reverse("members", args=["acme"]), "Add a member"),
    ]:
        assert hidden not in client.get(page).content.decode(), (page, hidden)

    operations, memberships = Operation.objects.count(), Membership.objects.count()
    for url, data in actions(cluster, certificate):
        assert client.post(url, data).status_code == 403, url
    assert client.get(reverse("cluster-register", args=["acme"])).status_code == 403
    assert (Operation.objects.count(), Membership.objects.count()) == (operations, memberships)
    assert not Organization.objects.filter(name="initech").exists()
    assert Organization.objects.get(name="acme").state == Organization.State.ACTIVE
    cluster.refresh_from_db()
    certificate.refresh_from_db()
    assert (cluster.state, certificate.state) == (Cluster.State.READY, Certificate.State.ACTIVE)


def test_staff_with_the_permission_act_in_any_organization(client, personas, acme):
    cluster, certificate = acme
    client.force_login(grant(personas.sam, "act_in_any_organization"))
    assert "Deregister" in client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()
    assert client.post(reverse("members", args=["globex"]), {"username": "charlie", "role": "owner"}).status_code == 302
    assert client.post(reverse("certificate-renew", args=["acme", certificate.pk])).status_code == 302
    assert client.post(reverse("cluster-deregister", args=["acme", cluster.pk])).status_code == 302
    assert client.post(reverse("rotate-key", args=["acme"])).status_code == 302
    assert Membership.objects.get(user=personas.charlie).role == "owner"
    assert Operation.objects.filter(kind="rotate_credentials", created_by=personas.sam).exists()
    assert Operation.objects.filter(kind="deregister", created_by=personas.sam).exists()
    # Creating organizations is a permission of its own.
    assert client.post(reverse("organization-create"), {"name": "initech"}).status_code == 403
    client.force_login(grant(personas.sam, "add_organization"))
    assert client.post(reverse("organization-create"), {"name": "initech"}).status_code == 302
    # And so is deleting any organization, which owners do for their own.
    assert client.post(reverse("organization-offboard", args=["globex"]), {"confirmation": "globex"}).status_code == 302
    offboarding = Operation.objects.get(kind="offboard")
    assert (offboarding.organization, offboarding.created_by) == (personas.globex, personas.sam)


def test_the_permission_does_not_make_a_non_staff_user_see_more(client, personas, acme):
    cluster, _ = acme
    client.force_login(grant(personas.charlie, "act_in_any_organization", "add_organization"))
    assert client.get(reverse("organization", args=["acme"])).status_code == 404
    assert client.post(reverse("cluster-deregister", args=["acme", cluster.pk])).status_code == 404
    assert client.post(reverse("organization-create"), {"name": "initech"}).status_code == 403
    assert client.get(reverse("route53-budget")).status_code == 403


def admin_action(client, model, action, pks):
    url = reverse(f"admin:provisioning_{model}_changelist")
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks]}, follow=True)


def test_admin_actions_need_the_permission_too(client, personas, acme):
    cluster, certificate = acme
    viewer = grant(personas.sam, "view_cluster", "view_certificate", "view_operation", "view_hostedzone")
    client.force_login(viewer)
    page = client.get(reverse("admin:provisioning_cluster_changelist")).content.decode()
    assert "prod" in page and 'value="deregister"' not in page
    zone = cluster.organization.zones.get()
    assert "keep: in use" in admin_action(client, "hostedzone", "gc_dry_run", [zone.pk]).content.decode().lower()
    for model, action, pk in [
        ("cluster", "deregister", cluster.pk),
        ("cluster", "reprovision", cluster.pk),
        ("certificate", "renew", certificate.pk),
        ("hostedzone", "delete_if_unused", zone.pk),
        ("hostedzone", "rotate_access_key", zone.pk),
    ]:
        admin_action(client, model, action, [pk])
    assert Operation.objects.exclude(kind__in=["register", "issue_certificate"]).count() == 0

    client.force_login(grant(personas.sam, "act_in_any_organization"))
    assert "deregistration queued" in admin_action(client, "cluster", "deregister", [cluster.pk]).content.decode()
    assert Operation.objects.filter(kind="deregister").count() == 1


@pytest.mark.integration
def test_only_staff_see_the_route53_budget_and_its_link(client, personas):
    url = reverse("route53-budget")
    for persona in (personas.alice, personas.charlie):
        client.force_login(persona)
        assert client.get(url).status_code == 403
        assert url not in client.get(reverse("home")).content.decode()
        event = AuditEvent.objects.filter(action="access.refused").order_by("id").last()
        assert (event.actor, event.detail) == (persona, f"the Route53 budget: {persona.username} is not staff")
    client.logout()
    assert client.get(url)["Location"].startswith(reverse("login"))
    client.force_login(personas.sam)
    assert client.get(url).status_code == 200 and url in client.get(reverse("home")).content.decode()
