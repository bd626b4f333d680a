"""Offboarding an organization against the real servers: nothing of it is left in AWS, Vault or its clusters, the
zone goes when the GC says, the audit trail and the ledger stay; and deregistering a cluster races no certificate."""

import io
from datetime import timedelta

import django_rq
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from rq.job import Job

from provisioning.models import (
    AuditEvent,
    Certificate,
    CertificateInstallation,
    Cluster,
    HostedZone,
    Membership,
    Operation,
    Organization,
    ZoneCharge,
)
from provisioning.services.backends import Backends, vault_root
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters.jobs import DeregisterCluster
from provisioning.services.operations.leases import organization_lock
from provisioning.services.organizations import actions as organizations
from provisioning.services.organizations import offboarding
from provisioning.services.zones import setup as zone_setup
from tests.conftest import run_jobs, start_worker_process, vault_tree, wait_until
from tests.factories import register

pytestmark = pytest.mark.django_db(transaction=True)


def issue(org, name, targets):
    certificate, _ = certificates.issue_certificate(org, [f"{name}.acme.orgdns.test"], targets)
    run_jobs()
    certificate.refresh_from_db()
    assert certificate.state == Certificate.State.ACTIVE, certificate.message
    return certificate


def offboarding_operation(org):
    return Operation.objects.get(organization=org, kind="offboard")


def gc_command(*args):
    out = io.StringIO()
    call_command("gc_hosted_zones", *args, stdout=out)
    run_jobs()
    return out.getvalue()


def assert_nothing_of_acme_in_its_clusters(*apis):
    for api in apis:
        # The namespace a certificate was installed into stays: the tenant's workloads may live there.
        assert "external-dns" not in api.namespaces()
        assert api.objects("secrets", "web") == []
        for plural in ("deployments", "services", "secrets"):  # orgdns's; the bootstrap's objects are the tenant's
            assert api.objects(plural, "external-dns", "app.kubernetes.io/managed-by=orgdns") == []
        assert api.objects("clusterroles", selector="app.kubernetes.io/managed-by=orgdns") == []


def assert_nothing_of_acme_in_aws_credentials_or_vault(aws, vault):
    assert "orgdns-acme" not in [u["UserName"] for u in aws.iam.list_users()["Users"]]
    assert vault_tree(vault, f"{vault_root()}/orgs/acme") == []


@pytest.fixture
def acme_in_use(personas, make_cluster_api):
    """acme with two real clusters, a certificate installed in both, and another one whose issue is queued."""
    api_one, api_two = make_cluster_api(), make_cluster_api()
    api_one.allow_certificates("web")
    api_two.allow_certificates("web")
    one, two = register(personas.acme, "one", api_one), register(personas.acme, "two", api_two)
    installed = issue(personas.acme, "www", [(one, "web", "www-tls"), (two, "web", "www-tls")])
    queued, queued_issue = certificates.issue_certificate(
        personas.acme, ["api.acme.orgdns.test"], [(two, "web", "api-tls")]
    )
    assert len(api_one.objects("secrets", "web")) == len(api_two.objects("secrets", "web")) == 1
    return api_one, api_two, installed, queued, queued_issue


def test_offboarding_leaves_nothing_but_the_audit_trail_and_the_ledger(client, personas, acme_in_use, aws, vault):
    api_one, api_two, installed, queued, queued_issue = acme_in_use
    zone = HostedZone.objects.get(organization=personas.acme)
    events_before = AuditEvent.objects.filter(organization=personas.acme).count()
    client.force_login(personas.alice)

    page = client.get(reverse("organization-offboard", args=["acme"]))
    assert b"its 2 clusters are deregistered" in page.content and b"its 2 certificates" in page.content
    wrong = client.post(reverse("organization-offboard", args=["acme"]), {"confirmation": "acme-corp"})
    assert wrong.status_code == 200
    assert (
        "type its name, acme, exactly: &#x27;acme-corp&#x27; is not it. Nothing was changed." in wrong.content.decode()
    )
    assert Organization.objects.get(name="acme").state == Organization.State.ACTIVE
    assert not Operation.objects.filter(kind="offboard").exists()

    response = client.post(reverse("organization-offboard", args=["acme"]), {"confirmation": "acme"})
    operation = offboarding_operation(personas.acme)
    assert response.status_code == 302 and response["Location"] == reverse("operation", args=[operation.pk])
    queued_issue.refresh_from_db()
    assert (queued_issue.state, queued_issue.error) == (Operation.State.FAILED, "cancelled: organization offboarded")
    assert Job.fetch(str(queued_issue.pk), connection=django_rq.get_connection("default")).is_canceled
    # Nothing new starts in an organization being offboarded.
    with pytest.raises(ValidationError, match="acme is offboarding: nothing new can be started in it"):
        certificates.issue_certificate(personas.acme, ["x.acme.orgdns.test"])
    assert client.post(reverse("certificate-renew", args=["acme", installed.pk])).status_code == 403

    run_jobs()
    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED, operation.error

    assert_nothing_of_acme_in_its_clusters(api_one, api_two)
    assert_nothing_of_acme_in_aws_credentials_or_vault(aws, vault)
    assert set(Cluster.objects.filter(organization=personas.acme).values_list("state", flat=True)) == {"deregistered"}
    assert set(Certificate.objects.filter(organization=personas.acme).values_list("state", flat=True)) == {"deleted"}
    assert not CertificateInstallation.objects.exists()
    assert not Membership.objects.filter(organization=personas.acme).exists()
    org = Organization.objects.get(name="acme")
    assert org.state == Organization.State.OFFBOARDED and org.offboarded_at

    # The zone is the GC's now: young, so the next run deletes it, and the ledger says that cost nothing.
    zone.refresh_from_db()
    assert zone.state == HostedZone.State.ACTIVE and aws.route53.get_hosted_zone(Id=zone.zone_id)
    assert f"zone {zone.name}: unused and created" in operation.log
    assert "acme" in gc_command()
    zone.refresh_from_db()
    assert zone.state == HostedZone.State.DELETED
    assert f"{zone.name}." not in [z["Name"] for z in aws.route53.list_hosted_zones()["HostedZones"]]
    assert list(ZoneCharge.objects.filter(zone=zone).values_list("kind", flat=True)) == [ZoneCharge.Kind.AVOIDED_YOUNG]

    # The audit trail stays, and grew; members no longer see the organization; staff still do.
    assert AuditEvent.objects.filter(organization=org).count() > events_before
    actions = set(AuditEvent.objects.filter(organization=org).values_list("action", flat=True))
    assert {
        "offboard.queued",
        "issue_certificate.cancelled",
        "offboard.succeeded",
        "organization.offboarded",
    } <= actions
    assert client.get(reverse("organization", args=["acme"])).status_code == 404
    assert client.get(reverse("operation", args=[operation.pk])).status_code == 404
    client.force_login(personas.sam)
    staff_page = client.get(reverse("organization", args=["acme"]))
    assert staff_page.status_code == 200 and b"acme is offboarded since" in staff_page.content
    # Its name stays taken.
    with pytest.raises(ValidationError, match="already exists"):
        organizations.create_organization("acme")


def test_offboarding_waits_for_a_running_job_and_removes_what_it_made(client, personas, make_cluster_api, aws, vault):
    """The first certificate of the organization makes its CA under the organization lock; held here, its job keeps
    running while the organization is offboarded. The offboarding waits, says so, and removes what the job made."""
    api = make_cluster_api()
    api.allow_certificates("web")
    cluster = register(personas.acme, "one", api)
    workers = []
    try:
        with organization_lock(personas.acme):
            certificate, issuing = certificates.issue_certificate(
                personas.acme, ["www.acme.orgdns.test"], [(cluster, "web", "www-tls")]
            )
            workers.append(start_worker_process("--max-idle-time", "60"))
            wait_until(lambda: Operation.objects.get(pk=issuing.pk).state == Operation.State.RUNNING)
            operation = offboarding.offboard_organization(personas.acme, "acme", personas.alice)
            workers.append(start_worker_process("--max-idle-time", "60"))
            waiting = f"Waiting for issue certificate www.acme.orgdns.test (operation {issuing.pk}) to finish"
            wait_until(lambda: Operation.objects.get(pk=operation.pk).step == waiting)
            client.force_login(personas.alice)
            assert waiting in client.get(reverse("operation", args=[operation.pk])).content.decode()
        wait_until(lambda: Operation.objects.get(pk=operation.pk).finished, timeout=180)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait()
    issuing.refresh_from_db()
    operation.refresh_from_db()
    assert issuing.state == Operation.State.SUCCEEDED, issuing.error
    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert_nothing_of_acme_in_its_clusters(api)
    assert_nothing_of_acme_in_aws_credentials_or_vault(aws, vault)
    assert Certificate.objects.get(pk=certificate.pk).state == Certificate.State.DELETED


def test_deregistering_waits_for_a_running_certificate_job_and_leaves_no_secret(personas, make_cluster_api, vault):
    """The issue's race: the last cluster deregistered while a certificate for it is being issued."""
    api = make_cluster_api()
    api.allow_certificates("web")
    cluster = register(personas.acme, "one", api)
    workers = []
    try:
        with organization_lock(personas.acme):
            certificate, issuing = certificates.issue_certificate(
                personas.acme, ["www.acme.orgdns.test"], [(cluster, "web", "www-tls")]
            )
            workers.append(start_worker_process("--max-idle-time", "60"))
            wait_until(lambda: Operation.objects.get(pk=issuing.pk).state == Operation.State.RUNNING)
            deregistration = DeregisterCluster.enqueue(cluster)
            workers.append(start_worker_process("--max-idle-time", "60"))
            wait_until(
                lambda: Operation.objects.get(pk=deregistration.pk).step.startswith("Waiting for issue certificate")
            )
        wait_until(lambda: Operation.objects.get(pk=deregistration.pk).finished, timeout=180)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait()
    deregistration.refresh_from_db()
    assert deregistration.state == Operation.State.SUCCEEDED, deregistration.error
    assert api.objects("secrets", "web") == [] and "external-dns" not in api.namespaces()
    assert not CertificateInstallation.objects.filter(cluster=cluster).exists()
    # The organization lives on: its certificate stays, to be installed into a later cluster.
    assert Certificate.objects.get(pk=certificate.pk).state == Certificate.State.ACTIVE


def test_an_offboarded_organizations_paid_zone_is_deleted_in_the_final_window(instant, personas, aws, vault):
    """A zone created early in the month has its month paid: the GC keeps it until the final window, then deletes it
    (no cluster can reuse it, but deleting earlier saves nothing); its IAM user and key go at once."""
    backends = Backends()
    zone = zone_setup.ensure_zone(personas.acme, backends, zone_setup.NoProgress())
    zone_setup.ensure_credentials(zone, backends.vault(), backends, zone_setup.NoProgress())
    created = instant.month + timedelta(hours=1)
    HostedZone.objects.filter(pk=zone.pk).update(aws_created_at=created)
    deadline = instant.next_month - settings.ORGDNS_GC_FINAL_WINDOW

    with instant.travel(created + timedelta(hours=13)):
        offboarding.offboard_organization(personas.acme, "acme")
        run_jobs()
        assert Organization.objects.get(name="acme").state == Organization.State.OFFBOARDED
        assert_nothing_of_acme_in_aws_credentials_or_vault(aws, vault)
    with instant.travel(deadline - timedelta(minutes=1)):
        assert "kept for reuse" in gc_command("--dry-run")
        gc_command()
    zone.refresh_from_db()
    assert zone.state == HostedZone.State.ACTIVE
    with instant.travel(deadline):
        gc_command()
    zone.refresh_from_db()
    assert zone.state == HostedZone.State.DELETED
    assert f"{zone.name}." not in [z["Name"] for z in aws.route53.list_hosted_zones()["HostedZones"]]
    ledger = sorted(ZoneCharge.objects.filter(zone=zone).values_list("month", "kind"))
    assert ledger == [(instant.month.date(), "charged"), (instant.next_month.date(), "avoided_renewal")]


# --- who may, and bad input -----------------------------------------------------------------------


def test_members_do_not_see_the_delete_button(client, personas):
    client.force_login(personas.alice)
    assert (
        reverse("organization-offboard", args=["acme"]).encode()
        in client.get(reverse("organization", args=["acme"])).content
    )
    Membership.objects.filter(user=personas.alice).update(role=Membership.Role.MEMBER)
    assert (
        reverse("organization-offboard", args=["acme"]).encode()
        not in client.get(reverse("organization", args=["acme"])).content
    )
    assert client.get(reverse("organization-offboard", args=["acme"])).status_code == 403


@pytest.mark.integration
def test_offboarding_twice_is_refused_and_a_failed_one_is_resumed(personas):
    operation = offboarding.offboard_organization(personas.acme, "acme")
    with pytest.raises(ValidationError, match="acme is already being offboarded"):
        offboarding.offboard_organization(personas.acme, "acme")
    Operation.objects.filter(pk=operation.pk).update(state=Operation.State.FAILED, error="vault down")
    again = offboarding.offboard_organization(personas.acme, "acme")
    run_jobs()
    again.refresh_from_db()
    assert again.state == Operation.State.SUCCEEDED, again.error
    with pytest.raises(ValidationError, match="acme was offboarded on"):
        offboarding.offboard_organization(personas.acme, "acme")


@pytest.mark.integration
def test_the_command_offboards_and_refuses_an_unknown_name(personas):
    out = io.StringIO()
    call_command("offboard_organization", "acme", stdout=out)
    assert out.getvalue().startswith("Offboarding acme: operation ")
    assert Organization.objects.get(name="acme").state == Organization.State.OFFBOARDING
    assert AuditEvent.objects.get(action="offboard.queued").source == AuditEvent.Source.ADMIN
    with pytest.raises(CommandError, match="There is no organization named 'nope'"):
        call_command("offboard_organization", "nope")


def test_a_job_queued_before_the_offboarding_refuses_to_run(personas, cluster_api):
    """A register job whose row committed after the offboarding began (so it was not cancelled) creates nothing."""
    cluster, register_op = clusters.register_cluster(personas.acme, "one", cluster_api.connection)
    Organization.objects.filter(pk=personas.acme.pk).update(state=Organization.State.OFFBOARDING)
    run_jobs()
    register_op.refresh_from_db()
    assert register_op.state == Operation.State.FAILED
    assert register_op.error == "acme is offboarding: nothing new can be started in it."
    assert not HostedZone.objects.exists() and cluster_api.namespaces() == []


@pytest.mark.integration
def test_the_api_offboards_with_the_typed_name(client, personas):
    from provisioning.services.people import api_tokens

    _, raw = api_tokens.create_token(personas.alice, "ci", 30)
    headers = {"Authorization": f"Bearer {raw}"}
    url = "/api/v1/organizations/acme/offboard"
    wrong = client.post(url, {"confirmation": "globex"}, content_type="application/json", headers=headers)
    assert wrong.status_code == 422 and "type its name, acme, exactly: 'globex' is not it" in wrong.json()["detail"]
    assert client.get("/api/v1/organizations/acme", headers=headers).json()["state"] == "active"

    accepted = client.post(url, {"confirmation": "acme"}, content_type="application/json", headers=headers)
    assert accepted.status_code == 202 and accepted.json()["operation"]["kind"] == "offboard"
    assert client.get("/api/v1/organizations/acme", headers=headers).json()["state"] == "offboarding"
    again = client.post(url, {"confirmation": "acme"}, content_type="application/json", headers=headers)
    assert again.status_code == 409 and "acme is already being offboarded" in again.json()["detail"]
    refused = client.post(
        "/api/v1/organizations/acme/certificates",
        {"dns_names": ["x.acme.orgdns.test"]},
        content_type="application/json",
        headers=headers,
    )
    assert (
        refused.status_code == 403
        and "acme is offboarding: nothing in it can be changed any more" in refused.json()["detail"]
    )
