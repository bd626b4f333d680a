"""Registering clusters end to end: form/service → RQ job → moto, OpenBao and a real cluster running ExternalDNS."""

import base64
import json

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from provisioning.clients.externaldns import EXTERNALDNS_CLUSTER_ROLE
from provisioning.models import Cluster, HostedZone, Operation
from provisioning.rules import budget
from provisioning.services.clusters.jobs import RegisterCluster
from tests.conftest import run_jobs, vault_tree
from tests.factories import attempt_registration

pytestmark = pytest.mark.django_db(transaction=True)


def deployment(server):
    (deploy,) = server.objects("deployments", "external-dns")
    return deploy


def deployment_args(server):
    return deployment(server)["spec"]["template"]["spec"]["containers"][0]["args"]


def test_first_cluster_gets_zone_scoped_user_key_and_externaldns(personas, cluster_api, aws, vault):
    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api, personas.alice)

    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert cluster.state == Cluster.State.READY
    zone = HostedZone.objects.get(organization=personas.acme)
    assert zone.state == HostedZone.State.ACTIVE
    assert zone.name == "acme.orgdns.test"
    zones = aws.route53.list_hosted_zones()["HostedZones"]
    assert [(z["Name"], z["Id"].split("/")[-1]) for z in zones] == [("acme.orgdns.test.", zone.zone_id)]
    assert zone.name_servers == aws.route53.get_hosted_zone(Id=zone.zone_id)["DelegationSet"]["NameServers"]
    assert zone.aws_created_at is not None

    users = [u["UserName"] for u in aws.iam.list_users()["Users"]]
    assert users == ["orgdns-acme"]
    keys = aws.iam.list_access_keys(UserName="orgdns-acme")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [zone.access_key_id]

    stored = vault.secrets.kv.v2.read_secret_version(
        path=f"{_prefix()}/orgs/acme/aws", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert stored["access_key_id"] == zone.access_key_id

    secret = cluster_api.objects("secrets", "external-dns")[0]
    assert base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode() == stored["secret_access_key"]
    args = deployment_args(cluster_api)
    assert f"--zone-id-filter={zone.zone_id}" in args
    assert "--domain-filter=acme.orgdns.test" in args
    assert f"--txt-owner-id={cluster.owner_id}" in args
    assert "--policy=sync" in args
    assert "--enable-legacy-annotation-prefix" in args and not any(a.startswith("--annotation-prefix") for a in args)
    assert "--txt-prefix=_extdns-%{record_type}." in args
    assert "--provider=aws" in args and "--registry=txt" in args and "--aws-zone-type=public" in args
    image = deployment(cluster_api)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":v0.23.0")
    (pod,) = cluster_api.objects("pods", "external-dns")
    assert [c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    # ExternalDNS reads with the tenant's bootstrap ClusterRole; orgdns itself made nothing cluster-wide.
    ours = "app.kubernetes.io/managed-by=orgdns"
    assert cluster_api.objects("clusterrolebindings", selector=ours) == []
    assert cluster_api.objects("clusterroles", selector=ours) == []
    role = cluster_api.cluster.api("GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{EXTERNALDNS_CLUSTER_ROLE}")
    rules = role["rules"]
    assert {res for rule in rules for res in rule["resources"]} >= {
        "services",
        "ingresses",
        "pods",
        "nodes",
        "endpointslices",
    }


def _prefix():
    from provisioning.services.backends import vault_root

    return vault_root()


def test_iam_policy_allows_only_this_zone(personas, cluster_api, aws):
    attempt_registration(personas.acme, "prod", cluster_api)
    zone = HostedZone.objects.get(organization=personas.acme)
    document = aws.iam.get_user_policy(UserName="orgdns-acme", PolicyName="orgdns-zone-records")["PolicyDocument"]
    policy = IAMPolicy(json.dumps(document) if isinstance(document, dict) else document)

    def allowed(action, resource):
        return policy.is_action_permitted(action, resource) == PermissionResult.PERMITTED

    assert allowed("route53:ChangeResourceRecordSets", f"arn:aws:route53:::hostedzone/{zone.zone_id}")
    assert allowed("route53:ListResourceRecordSets", f"arn:aws:route53:::hostedzone/{zone.zone_id}")
    assert allowed("route53:ListHostedZones", "*")
    assert not allowed("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/ZOTHERTENANT")
    assert not allowed("route53:ListResourceRecordSets", "arn:aws:route53:::hostedzone/ZOTHERTENANT")
    assert not allowed("route53:DeleteHostedZone", f"arn:aws:route53:::hostedzone/{zone.zone_id}")
    assert not allowed("iam:CreateUser", "*")


def test_second_cluster_reuses_zone_and_credentials_without_aws_calls(personas, make_cluster_api, aws):
    first, _ = attempt_registration(personas.acme, "one", make_cluster_api())
    second_api = make_cluster_api()
    second, operation = attempt_registration(personas.acme, "two", second_api)

    assert second.state == Cluster.State.READY
    assert "route53" not in operation.remote_calls and "iam" not in operation.remote_calls
    assert operation.remote_calls["vault"] >= 1 and operation.remote_calls["kubernetes"] >= 1
    assert len(aws.route53.list_hosted_zones()["HostedZones"]) == 1
    assert len(aws.iam.list_access_keys(UserName="orgdns-acme")["AccessKeyMetadata"]) == 1
    assert first.owner_id != second.owner_id
    assert f"--txt-owner-id={second.owner_id}" in deployment_args(second_api)


def test_rerunning_a_finished_job_changes_nothing(personas, cluster_api, aws, vault):
    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api)
    zone = HostedZone.objects.get()
    versions_before = _aws_secret_version(vault)
    deploy_before = deployment(cluster_api)["metadata"]["resourceVersion"]

    rerun = Operation.objects.create(kind="register", organization=personas.acme, cluster=cluster)
    from provisioning.services.operations.running import run as run_operation

    assert run_operation(str(rerun.pk)) == Operation.State.SUCCEEDED
    rerun.refresh_from_db()
    assert "route53" not in rerun.remote_calls and "iam" not in rerun.remote_calls
    assert HostedZone.objects.get().access_key_id == zone.access_key_id
    assert _aws_secret_version(vault) == versions_before
    assert deployment(cluster_api)["metadata"]["resourceVersion"] == deploy_before
    assert "unchanged" in rerun.log and "created" not in rerun.log.split("reusing")[-1]


def _aws_secret_version(vault):
    return vault.secrets.kv.v2.read_secret_metadata(path=f"{_prefix()}/orgs/acme/aws", mount_point="secret")["data"][
        "current_version"
    ]


def test_parent_zone_gets_ns_delegation(personas, cluster_api, aws, settings):
    parent = aws.route53.create_hosted_zone(Name="orgdns.test", CallerReference="parent")["HostedZone"]["Id"]
    settings.ORGDNS_PARENT_ZONE_ID = parent.split("/")[-1]
    _, operation = attempt_registration(personas.acme, "prod", cluster_api)
    assert operation.remote_calls["route53"] == budget.FIRST_REGISTRATION_CALLS  # what the budget counts for it
    zone = HostedZone.objects.get()
    records = aws.route53.list_resource_record_sets(HostedZoneId=parent)["ResourceRecordSets"]
    (ns,) = [r for r in records if r["Name"] == "acme.orgdns.test." and r["Type"] == "NS"]
    assert sorted(v["Value"] for v in ns["ResourceRecords"]) == sorted(zone.name_servers)
    assert zone.delegated


def test_existing_zone_of_ours_is_adopted_not_duplicated(personas, cluster_api, aws):
    created = aws.route53.create_hosted_zone(Name="acme.orgdns.test", CallerReference="earlier-run")["HostedZone"]
    zone_id = created["Id"].split("/")[-1]
    aws.route53.change_tags_for_resource(
        ResourceType="hostedzone",
        ResourceId=zone_id,
        AddTags=[
            {"Key": "orgdns:managed-by", "Value": "orgdns"},
            {"Key": "orgdns:organization", "Value": "acme"},
            {"Key": "orgdns:deployment", "Value": "orgdns-test"},
        ],
    )
    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api)
    assert cluster.state == Cluster.State.READY
    assert HostedZone.objects.get().zone_id == zone_id
    assert len(aws.route53.list_hosted_zones()["HostedZones"]) == 1


def test_foreign_zone_with_our_name_is_refused(personas, cluster_api, aws):
    aws.route53.create_hosted_zone(Name="acme.orgdns.test", CallerReference="someone-else")
    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api)
    assert operation.state == Operation.State.FAILED
    assert "was not created by orgdns" in operation.error
    assert cluster.state == Cluster.State.ERROR and "was not created by orgdns" in cluster.message
    assert aws.iam.list_users()["Users"] == []
    assert cluster_api.objects("deployments") == []


def test_nothing_of_the_flow_lands_outside_the_org_vault_path(personas, cluster_api, vault):
    cluster, _ = attempt_registration(personas.acme, "prod", cluster_api)
    paths = vault_tree(vault, _prefix())
    assert sorted(paths) == sorted([f"{_prefix()}/orgs/acme/aws", f"{_prefix()}/orgs/acme/clusters/{cluster.owner_id}"])


def test_a_failed_delegation_leaves_a_zone_the_gc_can_see_and_a_rerun_delegates(
    personas, cluster_api, aws, settings, aws_faults
):
    parent = aws.route53.create_hosted_zone(Name="orgdns.test", CallerReference="parent")["HostedZone"]["Id"].split(
        "/"
    )[-1]
    settings.ORGDNS_PARENT_ZONE_ID = parent
    aws_faults.error("route53", "ChangeResourceRecordSets", "InvalidChangeBatch", times=1)
    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api)
    assert operation.state == Operation.State.FAILED and "InvalidChangeBatch" in operation.error
    zone = HostedZone.objects.get()
    assert zone.state == HostedZone.State.ACTIVE and zone.zone_id and not zone.delegated

    RegisterCluster.enqueue_again(cluster)
    run_jobs()
    zone.refresh_from_db()
    assert zone.delegated
    assert len(aws.route53.list_hosted_zones()["HostedZones"]) == 2


def test_an_adopted_zone_keeps_the_creation_time_we_tagged(personas, cluster_api, aws):
    created = aws.route53.create_hosted_zone(Name="acme.orgdns.test", CallerReference="earlier-run")["HostedZone"]
    tags = {
        "orgdns:managed-by": "orgdns",
        "orgdns:organization": "acme",
        "orgdns:deployment": "orgdns-test",
        "orgdns:created-at": "2026-01-31T22:00:00+00:00",
    }
    aws.route53.change_tags_for_resource(
        ResourceType="hostedzone",
        ResourceId=created["Id"].split("/")[-1],
        AddTags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    attempt_registration(personas.acme, "prod", cluster_api)
    assert HostedZone.objects.get().aws_created_at.isoformat() == "2026-01-31T22:00:00+00:00"
