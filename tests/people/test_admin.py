"""The support admin: staff only, provider ids read-only, actions through the same job path, audited."""

import pytest
from django.urls import reverse

from provisioning.models import AuditEvent, Cluster, Operation
from provisioning.services.clusters import actions as clusters
from tests.conftest import run_jobs
from tests.factories import register, registered_rows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def support(client, personas):
    client.force_login(personas.sam)  # staff, not superuser: the admin works through model permissions
    personas.sam.is_superuser = True
    personas.sam.save()
    return client


@pytest.fixture
def ready_cluster(personas, cluster_api):
    return register(personas.acme, "prod", cluster_api, personas.alice)


@pytest.fixture
def cluster_rows(personas):
    """The rows of acme's ready cluster (and its zone) only: for actions that just queue a job."""
    return registered_rows(personas.acme, "prod", personas.alice)


def act(client, model, action, pks):
    return client.post(
        reverse(f"admin:provisioning_{model}_changelist"),
        {"action": action, "_selected_action": [str(pk) for pk in pks]},
        follow=True,
    )


def test_reprovision_and_deregister_go_through_jobs(support, ready_cluster, cluster_api):
    response = act(support, "cluster", "reprovision", [ready_cluster.pk])
    assert "provisioning queued" in response.content.decode()
    run_jobs()
    assert ready_cluster.operations.filter(kind="register", state="succeeded").count() == 2

    act(support, "cluster", "deregister", [ready_cluster.pk])
    run_jobs()
    ready_cluster.refresh_from_db()
    assert ready_cluster.state == Cluster.State.DEREGISTERED
    assert cluster_api.objects("deployments", "external-dns") == []
    queued = AuditEvent.objects.get(action="deregister.queued")
    assert (queued.source, queued.actor_name) == ("admin", "sam")


def test_retry_a_failed_operation_from_the_admin(support, personas, cluster_api, aws_faults):
    aws_faults.error("iam", "CreateUser", "LimitExceeded", times=1, status=409)
    cluster, failed = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    response = act(support, "operation", "retry", [failed.pk])
    assert "retry queued" in response.content.decode()
    run_jobs()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY
    response = act(support, "operation", "retry", [Operation.objects.get(state="succeeded").pk])
    assert "Only a failed cluster operation or key rotation can be retried" in response.content.decode()


def test_gc_dry_run_for_selected_zones_changes_nothing(support, cluster_rows):
    zone = cluster_rows.organization.zones.get()
    response = act(support, "hostedzone", "gc_dry_run", [zone.pk])
    assert f"{zone.name}: keep: in use" in response.content.decode().lower()
    zone.refresh_from_db()
    assert zone.state == "active" and Operation.objects.filter(kind="delete_zone").count() == 0


def test_admin_changes_are_audited_and_names_that_others_depend_on_are_read_only(support, personas):
    url = reverse("admin:provisioning_organization_change", args=[personas.acme.pk])
    page = support.get(url).content.decode()
    assert 'name="name"' not in page  # zone and IAM user are named after it
    response = support.post(
        reverse("admin:provisioning_membership_change", args=[personas.acme.memberships.get(user=personas.vera).pk]),
        {"user": personas.vera.pk, "organization": personas.acme.pk, "role": "member"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="admin.change")
    assert (event.source, event.actor_name, event.organization) == ("admin", "sam", personas.acme)


@pytest.mark.integration
def test_the_admin_and_its_job_dashboard_are_refused_to_others(client, personas):
    client.force_login(personas.alice)
    assert client.get(reverse("admin:provisioning_cluster_changelist")).status_code == 302  # to the admin login
    personas.bob.is_staff = True
    personas.bob.save()
    client.force_login(personas.bob)
    assert client.get("/admin/django_rq/dashboard/").status_code == 403
    personas.sam.is_superuser = True
    personas.sam.save()
    client.force_login(personas.sam)
    assert client.get("/admin/django_rq/dashboard/").status_code == 200


def test_a_cluster_gone_for_good_can_be_forgotten(support, personas, ready_cluster, cluster_api, aws, vault):
    from django.conf import settings

    from tests.clusters.test_deregister import owned_records, write
    from tests.conftest import vault_tree

    zone = ready_cluster.organization.zones.get()
    old_key = zone.access_key_id
    write(aws, zone.zone_id, owned_records(ready_cluster.owner_id, zone.name, 3, "app"))
    refused = act(support, "cluster", "forget", [ready_cluster.pk])
    assert "only a cluster in error can be forgotten" in refused.content.decode()
    cluster_api.revoke_token()
    act(support, "cluster", "deregister", [ready_cluster.pk])
    run_jobs()
    ready_cluster.refresh_from_db()
    assert ready_cluster.state == Cluster.State.ERROR and "refused our token" in ready_cluster.message

    response = act(support, "cluster", "forget", [ready_cluster.pk])
    assert "forgotten; deregistration queued" in response.content.decode()
    run_jobs()
    ready_cluster.refresh_from_db()
    assert ready_cluster.state == Cluster.State.DEREGISTERED
    names = [r["Name"] for r in aws.route53.list_resource_record_sets(HostedZoneId=zone.zone_id)["ResourceRecordSets"]]
    assert not any(n.startswith(("app", "a-app")) for n in names)
    assert not any(ready_cluster.owner_id in p for p in vault_tree(vault, settings.VAULT_PREFIX))
    assert AuditEvent.objects.filter(action="cluster.forget", actor=personas.sam, source="admin").exists()
    # An ExternalDNS left running in the forgotten cluster has a key that no longer works.
    assert Operation.objects.get(kind="rotate_credentials").state == Operation.State.SUCCEEDED
    keys = [k["AccessKeyId"] for k in aws.iam.list_access_keys(UserName="orgdns-acme")["AccessKeyMetadata"]]
    zone.refresh_from_db()
    assert keys == [zone.access_key_id] and old_key not in keys


@pytest.mark.integration
def test_support_rotates_a_zones_key(support, personas, cluster_rows):
    zone = cluster_rows.organization.zones.get()
    assert "key rotation queued" in act(support, "hostedzone", "rotate_access_key", [zone.pk]).content.decode()
    assert Operation.objects.get(kind="rotate_credentials").created_by == personas.sam
