"""The pages offer an action exactly when the service would carry it out: both ask the same model methods."""

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from provisioning.models import Certificate, Cluster, HostedZone, Operation, past_renewal_point
from provisioning.services.backends import Backends
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters.jobs import DeregisterCluster, RegisterCluster
from provisioning.services.credentials import actions as key_rotation
from provisioning.services.credentials.vault_paths import cluster_secret_path
from provisioning.services.operations import running as operations

pytestmark = pytest.mark.django_db(transaction=True)


def make_cluster(organization, state, name=None):
    name = name or f"c-{uuid.uuid4().hex[:8]}"
    return Cluster.objects.create(
        organization=organization,
        name=name,
        api_server="https://cluster.invalid:6443",
        owner_id=f"{organization.name}-{name}",
        kube_system_uid=uuid.uuid4().hex,
        state=state,
    )


def make_operation(cluster, kind, state, **fields):
    return Operation.objects.create(
        kind=kind, organization=cluster.organization, cluster=cluster, state=state, **fields
    )


def accepted(action, *args):
    try:
        action(*args)
    except ValidationError:
        return False
    return True


CLUSTER_CASES = [(state, False) for state in Cluster.State.values] + [
    (Cluster.State.READY, True),  # a register job still queued for it
    (Cluster.State.ERROR, True),
]


@pytest.mark.integration
@pytest.mark.parametrize("state, registering", CLUSTER_CASES)
def test_the_cluster_page_offers_what_the_services_accept(client, personas, state, registering):
    cluster = make_cluster(personas.acme, state)
    if registering:
        make_operation(cluster, "register", Operation.State.QUEUED)
    client.force_login(personas.alice)
    page = client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()
    offers_deregister = f'action="{reverse("cluster-deregister", args=["acme", cluster.pk])}"' in page
    offers_reprovision = f'action="{reverse("cluster-reprovision", args=["acme", cluster.pk])}"' in page
    assert offers_deregister == cluster.can_deregister
    assert offers_reprovision == cluster.can_retry_registration

    assert accepted(DeregisterCluster.enqueue, Cluster.objects.get(pk=cluster.pk)) == offers_deregister
    Cluster.objects.filter(pk=cluster.pk).update(state=state)
    assert accepted(RegisterCluster.enqueue_again, Cluster.objects.get(pk=cluster.pk)) == offers_reprovision


def test_a_cluster_being_provisioned_is_not_offered_deregistration(client, personas):
    cluster = make_cluster(personas.acme, Cluster.State.PROVISIONING)
    make_operation(cluster, "register", Operation.State.RUNNING)
    client.force_login(personas.alice)
    page = client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()
    assert "Deregister</button>" not in page
    with pytest.raises(ValidationError, match="still being provisioned"):
        DeregisterCluster.enqueue(cluster)


def retry_cases():
    """(operation kind, its state, followed by another operation, cluster state)"""
    for state in Operation.State.values:
        yield "register", state, False, Cluster.State.ERROR
    yield "register", Operation.State.FAILED, True, Cluster.State.ERROR
    yield "deregister", Operation.State.FAILED, False, Cluster.State.ERROR
    yield "install_certificate", Operation.State.FAILED, False, Cluster.State.READY


@pytest.mark.integration
@pytest.mark.parametrize("kind, state, followed, cluster_state", list(retry_cases()))
def test_the_operation_page_offers_retry_exactly_when_the_service_retries(
    client, personas, kind, state, followed, cluster_state
):
    cluster = make_cluster(personas.acme, cluster_state)
    operation = make_operation(cluster, kind, state)
    if followed:
        later = make_operation(cluster, "rerender_externaldns", Operation.State.SUCCEEDED)
        Operation.objects.filter(pk=later.pk).update(created_at=operation.created_at + timedelta(seconds=1))
    client.force_login(personas.alice)
    page = client.get(reverse("operation", args=[operation.pk])).content.decode()
    offered = "Retry</button>" in page
    assert offered == operation.can_retry
    assert accepted(operations.retry_operation, Operation.objects.get(pk=operation.pk)) == offered


@pytest.mark.parametrize("state", Certificate.State.values)
def test_the_certificate_page_offers_what_the_services_accept(client, personas, cluster_api, state):
    certificate = Certificate.objects.create(
        organization=personas.acme, dns_names=["www.acme.orgdns.test"], state=state, serial="01"
    )
    # A real cluster whose tenant let orgdns install certificates in default: installing asks it where orgdns may.
    cluster = make_cluster(personas.acme, Cluster.State.READY)
    Cluster.objects.filter(pk=cluster.pk).update(api_server=cluster_api.url)
    cluster.refresh_from_db()
    vault = Backends().vault()
    vault.write(cluster_secret_path(vault, cluster), cluster_api.connection.as_secret())
    cluster_api.allow_certificates("default")
    client.force_login(personas.alice)
    page = client.get(reverse("certificate", args=["acme", certificate.pk])).content.decode()
    offered = {
        "renew": f'action="{reverse("certificate-renew", args=["acme", certificate.pk])}"' in page,
        "delete": f'action="{reverse("certificate-delete", args=["acme", certificate.pk])}"' in page,
        "install": f'href="{reverse("certificate-install", args=["acme", certificate.pk])}"' in page,
    }
    actions = {
        "renew": lambda c: certificates.renew_certificate(c),
        "delete": lambda c: certificates.delete_certificate(c),
        "install": lambda c: certificates.install_certificate(c, cluster, "default", "web-tls"),
    }
    for name, action in actions.items():
        Certificate.objects.filter(pk=certificate.pk).update(state=state)
        assert accepted(action, Certificate.objects.get(pk=certificate.pk)) == offered[name], name


def test_expiring_means_past_the_renewal_point_on_every_page(client, personas, settings):
    settings.ORGDNS_TLS_RENEW_AT = 2 / 3
    now = timezone.now()
    lifetimes = {  # name: (issued days ago, valid for days)
        "fresh": (10, 90),
        "renewal-due": (70, 90),  # 30 days left: past 2/3 of its lifetime
        "short-due": (5, 7),  # 2 days left of a week
        "expired": (100, 90),
        "long": (300, 400),  # 100 days left, but past 2/3
    }
    for name, (issued, valid) in lifetimes.items():
        Certificate.objects.create(
            organization=personas.acme,
            dns_names=[f"{name}.acme.orgdns.test"],
            state="active",
            not_before=now - timedelta(days=issued),
            not_after=now - timedelta(days=issued) + timedelta(days=valid),
        )
    expiring = {c.dns_names[0] for c in Certificate.objects.all() if c.is_expiring}
    assert expiring == {f"{name}.acme.orgdns.test" for name in ("renewal-due", "short-due", "expired", "long")}
    in_database = Certificate.objects.filter(past_renewal_point(now))
    assert {c.dns_names[0] for c in in_database} == expiring

    client.force_login(personas.alice)
    home = client.get(reverse("home")).content.decode()
    assert f"{len(expiring)} expiring</span>" in home
    assert "fresh.acme" not in home and all(name in home for name in expiring)
    listed = client.get(reverse("certificates", args=["acme"])).content.decode()
    assert listed.count('class="attention"') == len(expiring)


def test_the_certificate_page_polls_once(client, personas):
    certificate = Certificate.objects.create(
        organization=personas.acme, dns_names=["www.acme.orgdns.test"], state=Certificate.State.ISSUING
    )
    Operation.objects.create(
        kind="issue_certificate",
        organization=personas.acme,
        certificate=certificate,
        state=Operation.State.RUNNING,
    )
    client.force_login(personas.alice)
    page = client.get(reverse("certificate", args=["acme", certificate.pk])).content.decode()
    assert page.count("hx-get=") == 1 and page.count('hx-trigger="every 2s"') == 1
    assert f'hx-get="{reverse("certificate-summary", args=["acme", certificate.pk])}"' in page

    # The job has set the certificate's state but its operation is still finishing: the page keeps polling.
    Certificate.objects.filter(pk=certificate.pk).update(state=Certificate.State.ACTIVE)
    summary = client.get(reverse("certificate-summary", args=["acme", certificate.pk]))
    assert summary.status_code == 200 and "hx-get=" in summary.content.decode()
    Operation.objects.filter(certificate=certificate).update(state=Operation.State.SUCCEEDED)
    summary = client.get(reverse("certificate-summary", args=["acme", certificate.pk]))
    assert summary.status_code == 286 and "hx-get=" not in summary.content.decode()
    assert "succeeded" in summary.content.decode()


def test_a_live_zone_is_one_not_deleted(personas):
    for name in ("old", "older"):
        HostedZone.objects.create(organization=personas.acme, name=name, state=HostedZone.State.DELETED)
    assert not HostedZone.objects.live().exists() and personas.acme.zones.count() == 2
    for state in (HostedZone.State.CREATING, HostedZone.State.ACTIVE, HostedZone.State.DELETING):
        HostedZone.objects.update_or_create(organization=personas.acme, name="current", defaults={"state": state})
        assert [zone.name for zone in personas.acme.zones.live()] == ["current"]


@pytest.mark.integration
@pytest.mark.parametrize("state", [s for s in HostedZone.State.values if s != HostedZone.State.DELETED])
@pytest.mark.parametrize("access_key_id", ["", "AKIAEXAMPLE"])
def test_the_organization_page_offers_a_key_rotation_exactly_when_there_is_a_key_to_rotate(
    client, personas, state, access_key_id
):
    HostedZone.objects.create(
        organization=personas.acme, name="acme.orgdns.test", state=state, access_key_id=access_key_id
    )
    client.force_login(personas.alice)
    page = client.get(reverse("organization", args=["acme"])).content.decode()
    offered = f'action="{reverse("rotate-key", args=["acme"])}"' in page
    assert accepted(key_rotation.rotate_now, personas.acme, personas.alice) == offered
