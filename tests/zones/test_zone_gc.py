"""Garbage collection of unused zones against the real servers: teardown, crashes, races, the command."""

import io
import json
import re
import subprocess
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from provisioning.models import AuditEvent, Cluster, HostedZone, Operation, Organization, ZoneCharge
from provisioning.rules import billing
from provisioning.services.backends import Backends, vault_root
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters.jobs import DeregisterCluster, RegisterCluster
from provisioning.services.operations.leases import organization_lock
from provisioning.services.operations.running import run as run_operation
from provisioning.services.zones import billing_overview
from provisioning.services.zones import gc as zone_gc
from provisioning.services.zones import ledger as zone_ledger
from provisioning.services.zones import setup as zone_setup
from tests.conftest import WorkerDied, run_jobs, start_manage_process, start_worker_process, vault_tree, wait_until
from tests.factories import attempt_registration

pytestmark = pytest.mark.django_db(transaction=True)

RECORD_SETS = 450  # more than one ListResourceRecordSets page (300)
VALUES_PER_SET = 3  # 1,350 resource records: more than one change batch (1,000)


def deregister(cluster):
    DeregisterCluster.enqueue(cluster)
    run_jobs()


def unused_zone(org):
    """A young zone with its IAM user, access key and Vault secret, made by the register job's own steps, in an
    organization without clusters (as after its last one was deregistered)."""
    backends = Backends()
    zone = zone_setup.ensure_zone(org, backends, zone_setup.NoProgress())
    zone_setup.ensure_credentials(zone, backends.vault(), backends, zone_setup.NoProgress())
    return HostedZone.objects.get(pk=zone.pk)


def gc(now=None):
    now = now or timezone.now()
    planned = zone_gc.plan(now)
    zone_gc.apply(planned, now)
    return {entry.zone.organization.name: entry for entry in planned}


def deadline_of(instant):
    """When the GC deletes the paid unused zones of the instant's month."""
    return instant.next_month - settings.ORGDNS_GC_FINAL_WINDOW


def gc_at(instant, moment):
    """A GC run, and the jobs it queues, with the clock at `moment`."""
    with instant.travel(moment):
        planned = gc(moment)
        run_jobs()
    return planned


def live_zone(org, created, cluster=False):
    """An active zone row only (nothing in AWS), optionally used by a cluster."""
    zone = HostedZone.objects.create(
        organization=org,
        name=org.zone_name,
        state=HostedZone.State.ACTIVE,
        zone_id=f"Z{org.name.upper()}",
        aws_created_at=created,
    )
    if cluster:
        Cluster.objects.create(
            organization=org, name="prod", api_server="https://k.example", owner_id=f"{org.name}-prod"
        )
    return zone


def teardowns(org):
    return Operation.objects.filter(organization=org, kind="delete_zone")


def with_parent_zone(aws):
    parent = aws.route53.create_hosted_zone(Name=settings.ORGDNS_BASE_DOMAIN, CallerReference="parent")
    settings.ORGDNS_PARENT_ZONE_ID = parent["HostedZone"]["Id"].split("/")[-1]
    return settings.ORGDNS_PARENT_ZONE_ID


def fill(aws, zone):
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": f"app{i}.{zone.name}",
                "Type": "TXT",
                "TTL": 300,
                "ResourceRecords": [{"Value": f'"value {i}-{v}"'} for v in range(VALUES_PER_SET)],
            },
        }
        for i in range(RECORD_SETS)
    ]
    for start in range(0, len(changes), 100):
        aws.route53.change_resource_record_sets(
            HostedZoneId=zone.zone_id, ChangeBatch={"Changes": changes[start : start + 100]}
        )


def record_names(aws, zone_id):
    names, params = [], {"HostedZoneId": zone_id}
    while True:
        page = aws.route53.list_resource_record_sets(**params)
        names += [r["Name"] for r in page["ResourceRecordSets"]]
        if not page["IsTruncated"]:
            return names
        params.update(StartRecordName=page["NextRecordName"], StartRecordType=page["NextRecordType"])


def assert_nothing_left(org, aws, vault, parent_id=None):
    zones = [z["Name"] for z in aws.route53.list_hosted_zones()["HostedZones"]]
    assert f"{org.zone_name}." not in zones
    if parent_id:
        assert f"{org.zone_name}." not in record_names(aws, parent_id)
    assert f"orgdns-{org.name}" not in [u["UserName"] for u in aws.iam.list_users()["Users"]]
    assert vault_tree(vault, f"{vault_root()}/orgs/{org.name}") == []
    zone = HostedZone.objects.get(organization=org)
    assert zone.state == HostedZone.State.DELETED and zone.deleted_at and zone.route53_deleted_at


@pytest.fixture
def acme_full_zone(personas, make_cluster_api, aws):
    """acme's unused zone, delegated from a parent zone and holding 450 record sets; globex keeps a live cluster."""
    parent_id = with_parent_zone(aws)
    zone = unused_zone(personas.acme)
    fill(aws, zone)
    attempt_registration(personas.globex, "prod", make_cluster_api())
    return zone, parent_id


# --- teardown -------------------------------------------------------------------------------------


def test_an_unused_young_zone_is_torn_down_completely(personas, acme_full_zone, aws, vault):
    zone, parent_id = acme_full_zone
    assert len(record_names(aws, zone.zone_id)) == RECORD_SETS + 2

    planned = gc()
    assert planned["acme"].action == billing.DELETE and planned["acme"].outcome == "queued"
    assert planned["globex"].action == billing.KEEP and planned["globex"].outcome == ""
    run_jobs()

    (operation,) = teardowns(personas.acme)
    assert operation.state == Operation.State.SUCCEEDED, operation.error
    # 450 record sets: two pages to list; 1,350 values: two change batches (+1 change for the delegation).
    assert operation.remote_calls["route53.ListResourceRecordSets"] == 1 + 2
    assert operation.remote_calls["route53.ChangeResourceRecordSets"] == 1 + 2
    assert "deleted 450 record sets in 2 change requests" in operation.log
    assert_nothing_left(personas.acme, aws, vault, parent_id)
    # globex is untouched: its zone, delegation, user and secrets
    globex = HostedZone.objects.get(organization=personas.globex)
    assert globex.state == HostedZone.State.ACTIVE
    assert aws.route53.get_hosted_zone(Id=globex.zone_id)["HostedZone"]["Name"] == "globex.orgdns.test."
    assert "globex.orgdns.test." in record_names(aws, parent_id)
    assert aws.iam.get_user(UserName="orgdns-globex")
    assert len(vault_tree(vault, f"{vault_root()}/orgs/globex")) == 2
    # the row stays, with the charge the young deletion avoided
    (charge,) = ZoneCharge.objects.filter(zone=zone)
    assert (
        charge.kind == ZoneCharge.Kind.AVOIDED_YOUNG and charge.month == billing.month_start(zone.aws_created_at).date()
    )


def test_zones_in_use_and_paid_zones_are_kept_until_the_final_window(instant, personas, make_cluster_api, aws):
    attempt_registration(personas.acme, "prod", make_cluster_api())
    paid = unused_zone(personas.globex)
    created = instant.at - timedelta(days=3)
    HostedZone.objects.filter(pk=paid.pk).update(aws_created_at=created)
    deadline = deadline_of(instant)

    planned = gc_at(instant, instant.at)
    assert planned["acme"].action == billing.KEEP and planned["acme"].not_before is None
    if instant.at < deadline:
        assert (planned["globex"].action, planned["globex"].not_before) == (billing.KEEP, deadline)
        assert not Operation.objects.filter(kind="delete_zone").exists()
        planned = gc_at(instant, deadline + timedelta(minutes=30))
        assert planned["acme"].action == billing.KEEP
    assert (planned["globex"].action, planned["globex"].outcome) == (billing.DELETE, "queued")

    paid.refresh_from_db()
    assert paid.state == HostedZone.State.DELETED
    assert deadline <= paid.route53_deleted_at < instant.next_month
    assert HostedZone.objects.get(organization=personas.acme).state == HostedZone.State.ACTIVE
    charged = billing.charged_months(created, paid.route53_deleted_at)
    assert charged[-1] == instant.month.date()
    # The ledger's order: newest month first.
    assert list(ZoneCharge.objects.filter(zone=paid).values_list("month", "kind")) == [
        (instant.next_month.date(), ZoneCharge.Kind.AVOIDED_RENEWAL),
        *[(month, ZoneCharge.Kind.CHARGED) for month in reversed(charged)],
    ]


def test_a_later_cluster_of_the_organization_gets_a_fresh_zone(personas, make_cluster_api, aws, vault):
    old = unused_zone(personas.acme)
    gc()
    run_jobs()
    api = make_cluster_api()
    cluster, operation = attempt_registration(personas.acme, "second", api)

    assert cluster.state == Cluster.State.READY, operation.error
    fresh = HostedZone.objects.get(organization=personas.acme, state=HostedZone.State.ACTIVE)
    assert fresh.pk != old.pk and fresh.zone_id != old.zone_id
    assert [z["Id"].split("/")[-1] for z in aws.route53.list_hosted_zones()["HostedZones"]] == [fresh.zone_id]
    (deployment,) = api.objects("deployments", "external-dns")
    assert f"--zone-id-filter={fresh.zone_id}" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [k["AccessKeyId"] for k in aws.iam.list_access_keys(UserName="orgdns-acme")["AccessKeyMetadata"]] == [
        fresh.access_key_id
    ]


# --- races with registration ----------------------------------------------------------------------


def test_a_claim_is_refused_while_a_cluster_uses_the_zone(personas, cluster_api):
    attempt_registration(personas.acme, "prod", cluster_api)
    zone = HostedZone.objects.get()
    outcome, operation = zone_gc.delete_now(zone, personas.sam)
    assert (outcome, operation) == ("in-use", None)
    zone.refresh_from_db()
    assert zone.state == HostedZone.State.ACTIVE
    assert not teardowns(personas.acme).exists()


def test_a_zone_claimed_twice_is_torn_down_once(personas, cluster_api):
    zone = unused_zone(personas.acme)
    assert zone_gc.delete_now(zone, None)[0] == "queued"
    assert gc()["acme"].outcome == ""  # the next run sees it being deleted
    assert zone_gc.delete_now(zone, None)[0] == "taken"  # a teardown is already queued
    assert teardowns(personas.acme).count() == 1


def test_a_cluster_whose_job_runs_before_the_teardown_reclaims_the_zone(personas, make_cluster_api, aws):
    zone = unused_zone(personas.acme)
    gc()
    cluster, register_op = clusters.register_cluster(personas.acme, "second", make_cluster_api().connection)
    assert run_operation(str(register_op.pk)) == Operation.State.SUCCEEDED  # before the queued teardown
    run_jobs()

    cluster.refresh_from_db()
    register_op.refresh_from_db()
    assert cluster.state == Cluster.State.READY
    assert "kept for this cluster instead" in register_op.log
    kept = HostedZone.objects.get()
    assert (kept.pk, kept.state, kept.teardown_started_at) == (zone.pk, HostedZone.State.ACTIVE, None)
    assert aws.route53.get_hosted_zone(Id=zone.zone_id)
    (teardown,) = teardowns(personas.acme)
    assert teardown.state == Operation.State.SUCCEEDED and "no zone being deleted" in teardown.log


def test_a_cluster_registered_before_the_teardown_starts_keeps_the_zone(personas, make_cluster_api, aws):
    zone = unused_zone(personas.acme)
    gc()
    cluster, _ = attempt_registration(personas.acme, "second", make_cluster_api())  # the queued teardown runs first

    assert cluster.state == Cluster.State.READY
    (teardown,) = teardowns(personas.acme)
    assert teardown.state == Operation.State.SUCCEEDED and "the zone is kept" in teardown.log
    assert HostedZone.objects.get().pk == zone.pk
    assert HostedZone.objects.get().state == HostedZone.State.ACTIVE
    assert aws.route53.get_hosted_zone(Id=zone.zone_id)


def test_a_cluster_registered_during_a_stopped_teardown_waits_for_a_fresh_zone(
    personas, make_cluster_api, aws, aws_faults
):
    old = unused_zone(personas.acme)
    gc()
    aws_faults.error("route53", "DeleteHostedZone", "AccessDenied", times=1000, status=403)
    run_jobs()
    old.refresh_from_db()
    assert old.state == HostedZone.State.DELETING and old.teardown_started_at is not None

    cluster, register_op = attempt_registration(personas.acme, "second", make_cluster_api())
    assert register_op.state == Operation.State.FAILED  # it would be retried by RQ; the test suite has no retries
    assert "is being deleted; a new one is created once that finishes" in register_op.error
    assert cluster.state == Cluster.State.ERROR
    assert aws.route53.get_hosted_zone(Id=old.zone_id)  # never handed to the cluster, and still there

    aws_faults.heal()
    gc(timezone.now() + settings.ORGDNS_GC_RETRY_AFTER)
    run_jobs()
    RegisterCluster.enqueue_again(cluster)
    run_jobs()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY
    fresh = HostedZone.objects.get(organization=personas.acme, state=HostedZone.State.ACTIVE)
    assert fresh.zone_id != old.zone_id
    assert [z["Id"].split("/")[-1] for z in aws.route53.list_hosted_zones()["HostedZones"]] == [fresh.zone_id]


# --- failures and crashes -------------------------------------------------------------------------


def die_after_call(aws_faults, service, operation, nth):
    """The worker dies right after AWS carried out the nth call of this operation."""
    calls = [0]

    def die(**_):
        calls[0] += 1
        if calls[0] == nth:
            raise WorkerDied(f"worker died after {operation} #{nth}")

    aws_faults.events.register(f"after-call.{service}.{operation}", die)


@pytest.mark.parametrize(
    "service,operation,nth",
    [
        ("route53", "ListResourceRecordSets", 1),  # after looking up the delegation
        ("route53", "ChangeResourceRecordSets", 1),  # after removing the delegation
        ("route53", "ListResourceRecordSets", 2),  # after the first page of records
        ("route53", "ChangeResourceRecordSets", 2),  # after the first batch of record deletions
        ("route53", "ChangeResourceRecordSets", 3),  # after the last batch
        ("route53", "DeleteHostedZone", 1),
        ("iam", "ListAccessKeys", 1),
        ("iam", "DeleteAccessKey", 1),
        ("iam", "DeleteUserPolicy", 1),
        ("iam", "DeleteUser", 1),
    ],
)
def test_a_crash_between_teardown_steps_is_recovered_by_a_rerun(
    service, operation, nth, personas, acme_full_zone, aws, vault, aws_faults
):
    zone, parent_id = acme_full_zone
    gc()
    die_after_call(aws_faults, service, operation, nth)
    run_jobs()
    (crashed,) = teardowns(personas.acme)
    assert crashed.state == Operation.State.FAILED
    assert crashed.error == "internal error: the operators have the details in the worker log"
    zone.refresh_from_db()
    assert zone.state == HostedZone.State.DELETING  # visible, and no cluster can take it any more

    aws_faults.heal()
    waiting = gc()["acme"]
    assert (
        waiting.action == zone_gc.DELETING
        and waiting.not_before == crashed.finished_at + settings.ORGDNS_GC_RETRY_AFTER
    )
    assert waiting.outcome == ""
    resumed = gc(timezone.now() + settings.ORGDNS_GC_RETRY_AFTER)["acme"]
    assert resumed.action == zone_gc.RESUME and resumed.outcome == "queued"
    run_jobs()
    resumed.operation.refresh_from_db()
    assert resumed.operation.state == Operation.State.SUCCEEDED, resumed.operation.error
    assert_nothing_left(personas.acme, aws, vault, parent_id)
    assert HostedZone.objects.get(organization=personas.globex).state == HostedZone.State.ACTIVE


def test_a_vault_failure_at_the_last_step_is_recovered_by_a_rerun(personas, acme_full_zone, aws, vault):
    zone, parent_id = acme_full_zone
    gc()
    token, settings.VAULT_TOKEN = settings.VAULT_TOKEN, "not-the-token"
    run_jobs()
    (failed,) = teardowns(personas.acme)
    assert failed.state == Operation.State.FAILED
    assert failed.error == "Vault refused our token (permission denied): check VAULT_TOKEN and its policy"
    assert "not-the-token" not in failed.log + failed.error

    settings.VAULT_TOKEN = token
    gc(timezone.now() + settings.ORGDNS_GC_RETRY_AFTER)
    run_jobs()
    assert_nothing_left(personas.acme, aws, vault, parent_id)
    assert teardowns(personas.acme).first().remote_calls.get("route53", 0) == 0  # Route53 was done already


def test_a_teardown_that_fails_before_deleting_anything_gives_the_zone_back(personas, cluster_api, aws, settings):
    zone = unused_zone(personas.acme)
    gc()
    settings.ORGDNS_ORG_LOCK_WAIT = 1
    with organization_lock(personas.acme):  # another job holds the organization for longer than we wait
        run_jobs()
    (failed,) = teardowns(personas.acme)
    assert failed.state == Operation.State.FAILED and "is busy with another operation" in failed.error
    zone.refresh_from_db()
    assert (zone.state, zone.teardown_started_at) == (HostedZone.State.ACTIVE, None)
    assert aws.route53.get_hosted_zone(Id=zone.zone_id)
    assert gc()["acme"].outcome == "queued"  # planned afresh by the next run


def test_a_delegated_zone_is_not_deleted_without_its_parent_zone_setting(personas, cluster_api, aws):
    with_parent_zone(aws)
    zone = unused_zone(personas.acme)
    settings.ORGDNS_PARENT_ZONE_ID = ""
    gc()
    run_jobs()
    (failed,) = teardowns(personas.acme)
    assert failed.state == Operation.State.FAILED
    assert "delegated from a parent zone but ORGDNS_PARENT_ZONE_ID is not set" in failed.error
    assert aws.route53.get_hosted_zone(Id=zone.zone_id)
    assert HostedZone.objects.get().state == HostedZone.State.DELETING


# --- concurrency with real worker processes ---------------------------------------------------------


def gc_process():
    return start_manage_process("gc_hosted_zones", "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*processes):
    outputs = [p.communicate(timeout=240) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    return [out for out, _ in outputs]


def test_two_gc_runs_at_once_claim_each_zone_once():
    zones = 200
    orgs = Organization.objects.bulk_create([Organization(name=f"org{i:03d}") for i in range(zones)])
    HostedZone.objects.bulk_create(
        HostedZone(
            organization=org,
            name=org.zone_name,
            state=HostedZone.State.ACTIVE,
            zone_id=f"Z{org.pk}",
            aws_created_at=timezone.now(),
        )
        for org in orgs
    )
    first, second = finish(gc_process(), gc_process())

    runs = [json.loads(first), json.loads(second)]
    assert sum(run["summary"]["queued"] for run in runs) == zones
    queued = [z["zone"] for run in runs for z in run["zones"] if z["outcome"] == "queued"]
    assert len(queued) == len(set(queued)) == zones
    assert Operation.objects.filter(kind="delete_zone").count() == zones
    assert set(HostedZone.objects.values_list("state", flat=True)) == {HostedZone.State.DELETING}


def test_concurrent_gc_and_registration_never_leave_a_cluster_without_a_zone(personas, make_cluster_api, aws):
    orgs = [personas.acme, personas.globex] + [Organization.objects.create(name=f"team{i}") for i in range(2)]
    for org in orgs:
        fill(aws, unused_zone(org))  # many records: a teardown takes a while
    new_clusters = []

    def register_second(org):
        new_clusters.append(clusters.register_cluster(org, "second", make_cluster_api().connection)[0])

    now = timezone.now()
    planned = zone_gc.plan(now)
    assert {entry.action for entry in planned} == {billing.DELETE}
    # acme and globex: a cluster is registered between the GC's plan and its claims.
    for org in orgs[:2]:
        register_second(org)
    zone_gc.apply(planned, now)
    outcomes = {entry.zone.organization.name: entry.outcome for entry in planned}
    assert outcomes == {org.name: "in-use" if org in orgs[:2] else "queued" for org in orgs}
    # team0: right after the claim, before its teardown starts.
    register_second(orgs[2])
    workers = start_worker_process("--max-idle-time", "5"), start_worker_process("--max-idle-time", "5")
    # team1: once its teardown has started, so that its register job waits for the teardown to finish.
    wait_until(lambda: HostedZone.objects.filter(organization=orgs[3]).exclude(teardown_started_at=None).exists())
    register_second(orgs[3])
    finish(*workers)

    live_zone_ids = {z["Id"].split("/")[-1] for z in aws.route53.list_hosted_zones()["HostedZones"]}
    for cluster in new_clusters:
        cluster.refresh_from_db()
        assert cluster.state == Cluster.State.READY, (cluster.organization.name, cluster.message)
        zone = HostedZone.objects.get(organization=cluster.organization, state=HostedZone.State.ACTIVE)
        assert zone.zone_id in live_zone_ids
        assert aws.iam.list_access_keys(UserName=f"orgdns-{cluster.organization.name}")["AccessKeyMetadata"]
    assert len(new_clusters) == len(orgs)
    assert not HostedZone.objects.filter(state=HostedZone.State.DELETING).exists()
    # team1, whose teardown had started, got a fresh zone
    assert HostedZone.objects.get(organization=orgs[3], state=HostedZone.State.DELETED).route53_deleted_at


# --- the plan and the command -----------------------------------------------------------------------


def make_zones(count, now, prefix):
    for i in range(count):
        live_zone(Organization.objects.create(name=f"{prefix}{i}"), now - timedelta(hours=i), cluster=i % 2)


def test_planning_takes_one_query_however_many_zones():
    now = timezone.now()
    make_zones(3, now, "few")
    with CaptureQueriesContext(connection) as few:
        assert len(zone_gc.plan(now)) == 3
    make_zones(40, now, "many")
    with CaptureQueriesContext(connection) as many:
        assert len(zone_gc.plan(now)) == 43
    assert len(few) == len(many) == 1


@pytest.fixture
def planned_zones(instant, personas):
    """At the instant, acme: in use; globex: unused for 5 days (paid); initech: unused, 11 hours old (free)."""
    live_zone(personas.acme, instant.at - timedelta(days=20), cluster=True)
    live_zone(personas.globex, instant.at - timedelta(days=5))
    live_zone(Organization.objects.create(name="initech"), instant.at - timedelta(hours=11))
    return instant


def run_command(*args):
    out = io.StringIO()
    call_command("gc_hosted_zones", *args, stdout=out)
    return out.getvalue()


def test_dry_run_prints_the_plan_and_changes_nothing(planned_zones):
    instant = planned_zones
    with instant.travel():
        out = run_command("--dry-run")
    lines = out.strip().splitlines()
    assert lines[0].startswith("keep      acme.orgdns.test  org acme  age 20 d 0 h  in use")
    if instant.at < deadline_of(instant):
        deadline = f"{deadline_of(instant):%Y-%m-%d %H:%M} UTC"
        assert lines[1] == (
            "keep      globex.orgdns.test  org globex  age 5 d 0 h  unused, but this month is paid: kept for reuse "
            f"until {deadline}, then deleted  [not before {deadline}]"
        )
        paid, to_delete = 1, 1
    else:
        assert lines[1] == (
            "delete    globex.orgdns.test  org globex  age 5 d 0 h  unused, and next month's charge starts at "
            f"{instant.next_month:%Y-%m-%d %H:%M} UTC: deleting it now"
        )
        paid, to_delete = 0, 2
    assert lines[2] == (
        "delete    initech.orgdns.test  org initech  age 11 h 00 min  unused and created 11 h 00 min ago: deleting it "
        "now is free"
    )
    assert lines[3:] == [
        f"3 zones: 1 in use, {paid} unused but paid for (kept until their deletion time), {to_delete} to delete, 0 "
        "teardowns to resume, 0 being deleted; dry run: nothing changed."
    ]
    assert set(HostedZone.objects.values_list("state", flat=True)) == {HostedZone.State.ACTIVE}
    assert not Operation.objects.filter(kind="delete_zone").exists()


def test_now_shows_what_happens_at_month_end(planned_zones):
    month_end = planned_zones.next_month - timedelta(minutes=30)
    document = json.loads(run_command("--dry-run", "--json", "--now", month_end.isoformat()))
    actions = [(z["organization"], z["action"]) for z in document["zones"]]
    assert actions == [("acme", "keep"), ("globex", "delete"), ("initech", "delete")]  # every unused zone goes
    assert document["now"] == month_end.isoformat()
    assert document["summary"] == {
        "zones": 3,
        "in_use": 1,
        "kept_unused": 0,
        "to_delete": 2,
        "to_resume": 0,
        "deleting": 0,
        "queued": 0,
    }
    assert not Operation.objects.filter(kind="delete_zone").exists()


def test_json_describes_every_zone(planned_zones):
    instant = planned_zones
    with instant.travel():
        document = json.loads(run_command("--dry-run", "--json"))
    assert document["now"].startswith(instant.at.isoformat()[:16]) and document["now"].endswith("+00:00")
    assert [z["organization"] for z in document["zones"]] == ["acme", "globex", "initech"]
    globex = document["zones"][1]
    assert globex["zone"] == "globex.orgdns.test" and globex["zone_id"] == "ZGLOBEX" and globex["state"] == "active"
    assert 5 * 86400 <= globex["age_seconds"] <= 5 * 86400 + 60
    if instant.at < deadline_of(instant):
        assert (globex["action"], globex["not_before"]) == ("keep", deadline_of(instant).isoformat())
    else:
        assert (globex["action"], globex["not_before"]) == ("delete", None)
    assert globex["outcome"] is None and globex["operation"] is None


@pytest.mark.integration
def test_a_real_run_queues_the_teardowns_as_jobs(planned_zones):
    instant = planned_zones
    with instant.travel():
        document = json.loads(run_command("--json"))
    queued = ["initech"] if instant.at < deadline_of(instant) else ["globex", "initech"]
    assert [z["organization"] for z in document["zones"] if z["outcome"] == "queued"] == queued
    assert document["summary"]["queued"] == len(queued)
    initech = document["zones"][2]
    operation = Operation.objects.get(kind="delete_zone", organization__name="initech")
    assert str(operation.pk) == initech["operation"]
    assert HostedZone.objects.get(name="initech.orgdns.test").state == HostedZone.State.DELETING
    assert Operation.objects.filter(kind="delete_zone").count() == len(queued)
    audited = AuditEvent.objects.filter(action="delete_zone.queued").order_by("organization__name")
    assert [(e.organization.name, e.source, e.actor_name) for e in audited] == [
        (org, "cron", "system (cron)") for org in queued
    ]
    assert audited.get(organization__name="initech").request_id == operation.request_id
    with instant.travel():
        out = run_command()
    assert "deleting  initech.orgdns.test" in out and "its teardown is queued" in out
    assert out.strip().endswith("queued 0 teardowns, 0 skipped (in use again or taken by another run).")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--now", "2026-11-30T23:30:00Z"], "--now needs --dry-run"),
        (["--dry-run", "--now", "end of month"], "--now 'end of month' is not an ISO 8601 date and time"),
    ],
)
def test_bad_arguments_are_refused(planned_zones, args, message):
    with pytest.raises(CommandError, match=message):
        run_command(*args)
    assert not Operation.objects.filter(kind="delete_zone").exists()


def test_settings_out_of_range_are_named(planned_zones, settings):
    settings.ORGDNS_GC_FINAL_WINDOW = timedelta(0)
    with (
        planned_zones.travel(),
        pytest.raises(
            CommandError, match="final window before a month starts must be more than 0.*ORGDNS_GC_FINAL_WINDOW"
        ),
    ):
        run_command("--dry-run")


def test_a_naive_now_is_read_as_utc(planned_zones):
    document = json.loads(run_command("--dry-run", "--json", "--now", "2026-11-30T23:30:00"))
    assert document["now"] == "2026-11-30T23:30:00+00:00"


# --- the cost ledger and the pages ------------------------------------------------------------------


def test_the_ledger_records_each_charged_month_once(instant):
    now = instant.at
    old = live_zone(Organization.objects.create(name="old"), now - timedelta(days=40))
    young = live_zone(Organization.objects.create(name="young"), now - timedelta(hours=3))
    gone = live_zone(Organization.objects.create(name="gone"), now - timedelta(days=40))
    HostedZone.objects.filter(pk=gone.pk).update(state=HostedZone.State.DELETED)

    zone_ledger.record_charges(now)
    zone_ledger.record_charges(now)

    expected = billing.charged_months(old.aws_created_at, now)
    assert len(expected) >= 2 and expected[-1] == instant.month.date()
    # The ledger's order: newest month first.
    assert list(ZoneCharge.objects.filter(zone=old).values_list("month", "kind")) == [
        (month, ZoneCharge.Kind.CHARGED) for month in reversed(expected)
    ]
    assert not ZoneCharge.objects.filter(zone__in=[young, gone]).exists()
    later = now + timedelta(hours=10)  # 13 hours old: charged, for the next month too if it has begun
    zone_ledger.record_charges(later)
    young_months = list(ZoneCharge.objects.filter(zone=young).values_list("month", flat=True))
    assert young_months == billing.charged_months(young.aws_created_at, later)[::-1]
    assert young_months[0] == (instant.next_month if later >= instant.next_month else instant.month).date()


def test_prices_are_ranked_account_wide_and_savings_valued_at_the_margin(instant, personas, settings):
    settings.ORGDNS_ZONE_PRICE_TIER = 2
    now = instant.at
    acme = live_zone(personas.acme, now - timedelta(days=2))
    globex = live_zone(personas.globex, now - timedelta(days=3))
    initech = live_zone(Organization.objects.create(name="initech"), now - timedelta(days=1))
    zone_ledger.record_charges(now)
    ZoneCharge.objects.create(
        zone=HostedZone.objects.create(
            organization=Organization.objects.create(name="gone"),
            name="gone.orgdns.test",
            state=HostedZone.State.DELETED,
        ),
        month=instant.month.date(),
        kind=ZoneCharge.Kind.AVOIDED_YOUNG,
    )

    everything = billing_overview.billing_overview(Organization.objects.all(), now)
    assert everything.month == instant.month.date()
    assert [(c.charge.zone, c.price) for c in everything.charged] == [
        (globex, Decimal("0.50")),
        (acme, Decimal("0.50")),
        (initech, Decimal("0.10")),
    ]  # ranked in the order they were charged: the oldest zone first
    assert everything.charged_total == Decimal("1.10")
    assert [(c.charge.zone.name, c.price) for c in everything.avoided_young] == [("gone.orgdns.test", Decimal("0.10"))]
    assert everything.avoided_total == Decimal("0.10")
    acme_only = billing_overview.billing_overview(Organization.objects.filter(pk=personas.acme.pk), now)
    assert [(c.charge.zone, c.price) for c in acme_only.charged] == [(acme, Decimal("0.50"))]
    assert acme_only.avoided == []


def test_a_new_month_shows_its_charges_before_the_gc_has_recorded_them(instant, personas, client):
    """The GC last ran in the month before: the page shows this month's charge from the zones themselves, priced
    and ranked as the GC will record it, and the total does not change when the GC records it."""
    now = instant.at
    acme = live_zone(personas.acme, now - timedelta(days=40))
    globex = live_zone(personas.globex, now - timedelta(days=35), cluster=True)
    live_zone(Organization.objects.create(name="young"), now - timedelta(hours=2))  # free for its first 12 hours
    zone_ledger.record_charges(instant.month - timedelta(hours=1))  # the GC's last run, in the month before
    assert not ZoneCharge.objects.filter(month=instant.month.date()).exists()

    before = billing_overview.billing_overview(Organization.objects.all(), now)
    assert [(c.charge.zone, c.price, c.recorded) for c in before.charged] == [
        (acme, Decimal("0.50"), False),
        (globex, Decimal("0.50"), False),
    ]
    assert before.charged_total == Decimal("1.00")
    with instant.travel():
        client.force_login(personas.alice)
        page = client.get(reverse("billing")).content.decode()
    assert "<strong>$0.50</strong> for 1 zone" in page and "recorded in the ledger at the GC's next run" in page

    zone_ledger.record_charges(now)
    after = billing_overview.billing_overview(Organization.objects.all(), now)
    assert [(c.charge.zone, c.price, c.recorded) for c in after.charged] == [
        (acme, Decimal("0.50"), True),
        (globex, Decimal("0.50"), True),
    ]


@pytest.fixture
def ledger(instant, personas):
    """At the instant, acme: a paid zone nobody uses and a young deletion avoided; globex: a paid zone in use."""
    live_zone(personas.acme, instant.at - timedelta(days=2))
    live_zone(personas.globex, instant.at - timedelta(days=2), cluster=True)
    zone_ledger.record_charges(instant.at)
    gone = HostedZone.objects.create(
        organization=personas.acme, name="acme.orgdns.test", state=HostedZone.State.DELETED
    )
    ZoneCharge.objects.create(zone=gone, month=instant.month.date(), kind=ZoneCharge.Kind.AVOIDED_YOUNG)
    return instant


def scheduled_acme(instant):
    """How the pages say when acme's unused zone goes, and why."""
    deadline = deadline_of(instant)
    if instant.at < deadline:
        stamp = f"{deadline:%Y-%m-%d %H:%M} UTC"
        when = f'<time datetime="{deadline.astimezone(UTC).isoformat().replace("+00:00", "Z")}">{stamp}</time>'
        return when, f"unused, but this month is paid: kept for reuse until {stamp}"
    renewal = f"{instant.next_month:%Y-%m-%d %H:%M} UTC"
    return "at the next GC run", f"unused, and next month&#x27;s charge starts at {renewal}"


def test_the_billing_page_shows_the_users_organizations_only(client, personas, ledger):
    def billing_page(user):
        with ledger.travel():  # sessions expire by the clock too
            client.force_login(user)
            return client.get(reverse("billing")).content.decode()

    page = billing_page(personas.alice)
    assert f"Hosted zone billing · {ledger.month:%B %Y}" in page
    assert "acme.orgdns.test" in page and "globex" not in page
    assert "<strong>$0.50</strong> for 1 zone" in page
    assert "1 young deletion" in page and "Avoided: deleted within 12 h of creation" in page
    when, why = scheduled_acme(ledger)
    assert re.search(rf"<td>{re.escape(when)}</td>\s*<td>{re.escape(why)}", page)  # scheduled: when, and why

    page = billing_page(personas.bob)
    assert "globex.orgdns.test" in page and "acme" not in page
    assert "No zone is scheduled for deletion" in page  # globex's zone is in use

    page = billing_page(personas.sam)
    assert "acme.orgdns.test" in page and "globex.orgdns.test" in page and "<strong>$1.00</strong> for 2 zones" in page
    assert page.index("acme.orgdns.test") < page.index("globex.orgdns.test")

    page = billing_page(personas.charlie)
    assert "acme" not in page and "globex" not in page and "No zone has been charged this month" in page


def test_the_billing_page_needs_a_login(client, ledger):
    response = client.get(reverse("billing"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.integration
def test_the_organization_page_shows_its_zones_gc_state(client, personas, ledger):
    def organization_page(user, org):
        with ledger.travel():  # sessions expire by the clock too
            client.force_login(user)
            return client.get(reverse("organization", args=[org]))

    page = organization_page(personas.vera, "acme").content.decode()  # a viewer sees it too
    when, why = scheduled_acme(ledger)
    assert "Garbage collection" in page and why in page
    if ledger.at < deadline_of(ledger):
        assert f"(from {when})" in page
    assert organization_page(personas.bob, "acme").status_code == 404
    assert "in use by this organization's clusters" in organization_page(personas.bob, "globex").content.decode()

    zone = HostedZone.objects.get(organization=personas.acme, state=HostedZone.State.ACTIVE)
    with ledger.travel():
        zone_gc.delete_now(zone, personas.sam)
    page = organization_page(personas.alice, "acme").content.decode()
    teardown = teardowns(personas.acme).get()
    assert "its teardown is queued" in page and reverse("operation", args=[teardown.pk]) in page


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw-root")


@pytest.mark.integration
def test_support_staff_delete_an_unused_zone_from_the_admin(client, personas, ledger, admin_user):
    acme = HostedZone.objects.get(organization=personas.acme, state=HostedZone.State.ACTIVE)
    globex = HostedZone.objects.get(organization=personas.globex)
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:provisioning_hostedzone_changelist"),
        {"action": "delete_if_unused", "_selected_action": [acme.pk, globex.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "Zone acme.orgdns.test: teardown queued." in page
    assert "Zone globex.orgdns.test is in use by a cluster of globex: kept." in page
    teardown = teardowns(personas.acme).get()
    assert teardown.created_by == admin_user
    assert not teardowns(personas.globex).exists()
    acme.refresh_from_db()
    assert acme.state == HostedZone.State.DELETING


def test_the_admin_lists_the_ledger_newest_month_first(client, personas, ledger, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("admin:provisioning_zonecharge_changelist"))
    assert response.status_code == 200
    rows = [(c.zone.name, c.zone.state, c.month, c.kind) for c in response.context["cl"].result_list]
    this_month = [
        ("acme.orgdns.test", "active", ledger.month.date(), "charged"),
        ("globex.orgdns.test", "active", ledger.month.date(), "charged"),
        ("acme.orgdns.test", "deleted", ledger.month.date(), "avoided_young"),
    ]
    created = ledger.at - timedelta(days=2)
    if created < ledger.month:  # the zones were charged for the month before too
        last_month = billing.month_start(created).date()
        assert rows == this_month + [
            ("acme.orgdns.test", "active", last_month, "charged"),
            ("globex.orgdns.test", "active", last_month, "charged"),
        ]
    else:
        assert rows == this_month


def test_members_cannot_use_the_admin_action(client, personas, ledger):
    acme = HostedZone.objects.get(organization=personas.acme, state=HostedZone.State.ACTIVE)
    client.force_login(personas.alice)
    response = client.post(
        reverse("admin:provisioning_hostedzone_changelist"),
        {"action": "delete_if_unused", "_selected_action": [acme.pk]},
    )
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not teardowns(personas.acme).exists()
