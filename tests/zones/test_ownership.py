"""orgdns never takes over, changes or deletes what it did not create: IAM users, parent-zone records, reserved names."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from provisioning.models import Cluster, HostedZone, Operation, Organization
from provisioning.services.clusters.jobs import DeregisterCluster
from provisioning.services.organizations import actions as organizations
from provisioning.services.zones import gc as zone_gc
from tests.conftest import run_jobs
from tests.factories import attempt_registration

pytestmark = pytest.mark.django_db(transaction=True)

FOREIGN_NS = ["ns1.other-dns.example.net", "ns2.other-dns.example.net"]


def parent_zone(aws, settings):
    created = aws.route53.create_hosted_zone(Name="orgdns.test", CallerReference="parent")["HostedZone"]["Id"]
    settings.ORGDNS_PARENT_ZONE_ID = created.split("/")[-1]
    return settings.ORGDNS_PARENT_ZONE_ID


def put_record(aws, zone_id, name, rtype, values, action="UPSERT"):
    record = {"Name": name, "Type": rtype, "TTL": 300, "ResourceRecords": [{"Value": v} for v in values]}
    aws.route53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": record}]}
    )


def records_named(aws, zone_id, name):
    page = aws.route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {
        (r["Type"], tuple(sorted(v["Value"] for v in r.get("ResourceRecords", [])))) for r in page if r["Name"] == name
    }


def assert_no_zone_created(aws):
    assert aws.route53.list_hosted_zones()["HostedZones"] == []
    assert not HostedZone.objects.exists()


# --- IAM users ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags",
    [
        [],
        [
            {"Key": "orgdns:managed-by", "Value": "orgdns"},
            {"Key": "orgdns:organization", "Value": "globex"},
            {"Key": "orgdns:deployment", "Value": "orgdns-test"},
        ],
        [
            {"Key": "orgdns:managed-by", "Value": "orgdns"},
            {"Key": "orgdns:organization", "Value": "acme"},
            {"Key": "orgdns:deployment", "Value": "staging"},
        ],
    ],
    ids=["untagged", "tagged-for-another-organization", "tagged-by-another-deployment"],
)
def test_an_iam_user_that_is_not_ours_fails_the_registration_and_is_left_alone(tags, personas, cluster_api, aws):
    aws.iam.create_user(UserName="orgdns-acme", Tags=tags)
    key = aws.iam.create_access_key(UserName="orgdns-acme")["AccessKey"]["AccessKeyId"]

    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api)

    assert operation.state == Operation.State.FAILED
    assert "IAM user orgdns-acme exists in the AWS account but was not created by orgdns for acme" in operation.error
    assert cluster.state == Cluster.State.ERROR and "orgdns-acme" in cluster.message
    assert [k["AccessKeyId"] for k in aws.iam.list_access_keys(UserName="orgdns-acme")["AccessKeyMetadata"]] == [key]
    assert aws.iam.list_user_policies(UserName="orgdns-acme")["PolicyNames"] == []
    assert_no_zone_created(aws)  # checked before anything is created
    assert cluster_api.objects("deployments") == []


def test_an_iam_user_of_ours_left_by_an_earlier_attempt_is_reused(personas, cluster_api, aws):
    aws.iam.create_user(
        UserName="orgdns-acme",
        Tags=[
            {"Key": "orgdns:managed-by", "Value": "orgdns"},
            {"Key": "orgdns:organization", "Value": "acme"},
            {"Key": "orgdns:deployment", "Value": "orgdns-test"},
        ],
    )
    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api)
    assert cluster.state == Cluster.State.READY, operation.error
    assert aws.iam.list_user_policies(UserName="orgdns-acme")["PolicyNames"] == ["orgdns-zone-records"]


def test_the_teardown_leaves_an_iam_user_that_is_not_ours_alone(personas, aws):
    HostedZone.objects.create(
        organization=personas.acme,
        name=personas.acme.zone_name,
        state=HostedZone.State.DELETING,
        teardown_started_at=timezone.now(),
        route53_deleted_at=timezone.now(),
    )
    aws.iam.create_user(UserName="orgdns-acme")
    aws.iam.create_access_key(UserName="orgdns-acme")
    zone_gc.delete_now(HostedZone.objects.get(), None)
    run_jobs()
    teardown = Operation.objects.get(kind="delete_zone")
    assert teardown.state == Operation.State.SUCCEEDED, teardown.error
    assert "IAM user orgdns-acme was not created by orgdns: left alone" in teardown.log
    assert len(aws.iam.list_access_keys(UserName="orgdns-acme")["AccessKeyMetadata"]) == 1


# --- the parent zone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rtype,values,shown",
    [
        ("NS", FOREIGN_NS, "an NS record (ns1.other-dns.example.net, ns2.other-dns.example.net)"),
        ("CNAME", ["elsewhere.example.net"], "a CNAME record (elsewhere.example.net)"),
    ],
)
def test_a_parent_zone_record_that_is_not_our_delegation_fails_the_registration(
    rtype, values, shown, personas, cluster_api, aws, settings
):
    parent = parent_zone(aws, settings)
    put_record(aws, parent, "acme.orgdns.test", rtype, values)

    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api)

    assert operation.state == Operation.State.FAILED
    assert (
        f"the parent zone {parent} already has {shown} named acme.orgdns.test that orgdns did not write"
        in operation.error
    )
    assert records_named(aws, parent, "acme.orgdns.test.") == {(rtype, tuple(sorted(values)))}
    assert [z["Name"] for z in aws.route53.list_hosted_zones()["HostedZones"]] == ["orgdns.test."]
    assert aws.iam.list_users()["Users"] == []


def test_a_record_made_between_the_check_and_the_delegation_is_not_overwritten(
    personas, cluster_api, aws, settings, aws_faults
):
    parent = parent_zone(aws, settings)

    def someone_else_writes_it(**_):
        put_record(aws, parent, "acme.orgdns.test", "NS", FOREIGN_NS)

    aws_faults.events.register("before-call.route53.CreateHostedZone", someone_else_writes_it)
    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api)
    assert operation.state == Operation.State.FAILED and "that orgdns did not write" in operation.error
    assert records_named(aws, parent, "acme.orgdns.test.") == {("NS", tuple(FOREIGN_NS))}
    assert not HostedZone.objects.get().delegated


def test_our_delegation_to_an_earlier_zone_is_replaced(personas, cluster_api, aws, settings):
    parent = parent_zone(aws, settings)
    earlier = ["ns-1.awsdns-01.org", "ns-2.awsdns-02.net"]
    HostedZone.objects.create(
        organization=personas.acme, name="acme.orgdns.test", state=HostedZone.State.DELETED, name_servers=earlier
    )
    put_record(aws, parent, "acme.orgdns.test", "NS", [f"{ns}." for ns in earlier])

    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api)

    assert cluster.state == Cluster.State.READY, operation.error
    zone = HostedZone.objects.exclude(state=HostedZone.State.DELETED).get()
    assert records_named(aws, parent, "acme.orgdns.test.") == {("NS", tuple(sorted(zone.name_servers)))}
    assert "replacing our delegation to an earlier zone" in operation.log


def test_the_teardown_deletes_only_our_delegation(personas, cluster_api, aws, settings):
    parent = parent_zone(aws, settings)
    cluster, _ = attempt_registration(personas.acme, "prod", cluster_api)
    DeregisterCluster.enqueue(cluster)
    run_jobs()
    # Someone pointed the name elsewhere since: that record is theirs now.
    put_record(aws, parent, "acme.orgdns.test", "NS", FOREIGN_NS)

    zone_gc.delete_now(HostedZone.objects.get(), None)
    run_jobs()

    teardown = Operation.objects.get(kind="delete_zone")
    assert teardown.state == Operation.State.SUCCEEDED, teardown.error
    assert "is not a delegation orgdns wrote: left alone" in teardown.log
    assert records_named(aws, parent, "acme.orgdns.test.") == {("NS", tuple(FOREIGN_NS))}
    assert HostedZone.objects.get().state == HostedZone.State.DELETED


def test_organization_creation_is_refused_when_the_parent_zone_has_the_name(personas, aws, settings, client):
    from tests.pages.test_staff import grant

    parent = parent_zone(aws, settings)
    put_record(aws, parent, "initech.orgdns.test", "A", ["192.0.2.1"])
    with pytest.raises(
        ValidationError,
        match=rf"initech.orgdns.test is already in use: the parent zone {parent} has an A record \(192.0.2.1\)",
    ):
        organizations.create_organization("initech")
    client.force_login(grant(personas.sam, "add_organization"))
    response = client.post(reverse("organization-create"), {"name": "initech"})
    assert response.status_code == 200 and "is already in use" in response.content.decode()
    superuser = type(personas.sam).objects.create_superuser("root", password="pw")
    client.force_login(superuser)
    response = client.post(
        reverse("admin:provisioning_organization_add"), {"name": "initech", **inline_management_form()}
    )
    assert response.status_code == 200 and "is already in use" in response.content.decode()
    assert not Organization.objects.filter(name="initech").exists()
    assert organizations.create_organization("hooli").name == "hooli"


def inline_management_form():
    return {
        f"memberships-{key}": value
        for key, value in {
            "TOTAL_FORMS": "0",
            "INITIAL_FORMS": "0",
            "MIN_NUM_FORMS": "0",
            "MAX_NUM_FORMS": "1000",
        }.items()
    }


# --- reserved names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["www", "api", "mail", "admin", "ns", "ns1", "ns-east", "_dmarc", "autodiscover"])
def test_reserved_names_are_refused(name):
    with pytest.raises(ValidationError, match="is reserved"):
        organizations.create_organization(name)
    assert not Organization.objects.exists()


def test_the_reserved_names_are_a_setting(settings):
    settings.ORGDNS_RESERVED_NAMES = ["acme*"]
    with pytest.raises(ValidationError, match="is reserved"):
        organizations.create_organization("acme-corp")
    assert organizations.create_organization("www").name == "www"


def test_a_duplicate_name_is_a_form_error_not_a_server_error(personas, client):
    from tests.pages.test_staff import grant

    client.force_login(grant(personas.sam, "add_organization"))
    response = client.post(reverse("organization-create"), {"name": "acme"})
    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert Organization.objects.filter(name="acme").count() == 1
