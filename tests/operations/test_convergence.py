"""A job that dies after any step, re-run, converges: one zone, one user, one live key, one secret, one ExternalDNS."""

import base64

import pytest
from django.conf import settings

from provisioning.models import Cluster, HostedZone, Operation
from provisioning.services.backends import vault_root
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters.jobs import RegisterCluster
from tests.conftest import run_jobs, vault_tree

pytestmark = pytest.mark.django_db(transaction=True)


def assert_converged(aws, vault, cluster_api, org="acme"):
    zones = aws.route53.list_hosted_zones()["HostedZones"]
    assert [z["Name"] for z in zones] == [f"{org}.orgdns.test."]
    zone = HostedZone.objects.get(organization__name=org)
    assert zone.zone_id == zones[0]["Id"].split("/")[-1]
    assert [u["UserName"] for u in aws.iam.list_users()["Users"]] == [f"orgdns-{org}"]
    keys = [k["AccessKeyId"] for k in aws.iam.list_access_keys(UserName=f"orgdns-{org}")["AccessKeyMetadata"]]
    stored = vault.secrets.kv.v2.read_secret_version(
        path=f"{vault_root()}/orgs/{org}/aws", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert keys == [stored["access_key_id"]] == [zone.access_key_id]
    assert [p for p in vault_tree(vault, settings.VAULT_PREFIX) if p.endswith("/aws")] == [
        f"{vault_root()}/orgs/{org}/aws"
    ]
    (deployment,) = cluster_api.objects("deployments", "external-dns")
    (secret,) = cluster_api.objects("secrets", "external-dns", "app.kubernetes.io/managed-by=orgdns")
    assert base64.b64decode(secret["data"]["AWS_ACCESS_KEY_ID"]).decode() == zone.access_key_id
    assert f"--zone-id-filter={zone.zone_id}" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert Cluster.objects.get(organization__name=org).state == Cluster.State.READY


CRASH_POINTS = [
    ("route53", "CreateHostedZone"),
    ("route53", "ChangeTagsForResource"),
    ("iam", "CreateUser"),
    ("iam", "PutUserPolicy"),
    ("iam", "CreateAccessKey"),
    ("sts", "GetCallerIdentity"),
]


@pytest.mark.parametrize("service,operation", CRASH_POINTS)
def test_job_dying_after_a_step_converges_when_rerun(service, operation, personas, cluster_api, aws, vault, aws_faults):
    aws_faults.die_after(service, operation)
    cluster, first = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    first.refresh_from_db()
    cluster.refresh_from_db()
    assert first.state == Operation.State.FAILED
    assert cluster.state == Cluster.State.ERROR

    aws_faults.heal()
    second = RegisterCluster.enqueue_again(cluster)
    run_jobs()
    second.refresh_from_db()
    assert second.state == Operation.State.SUCCEEDED, second.error
    assert_converged(aws, vault, cluster_api)


def test_job_dying_while_deploying_converges_when_rerun(personas, cluster_api, aws, vault):
    cluster, first = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    # every attempt of the first write to the cluster (the read-only drift check before it tolerates a transient fault)
    cluster_api.fail_next(settings.ORGDNS_RETRY_ATTEMPTS, method="PATCH")
    run_jobs()
    first.refresh_from_db()
    assert first.state == Operation.State.FAILED
    assert "answered 503" in first.error

    RegisterCluster.enqueue_again(cluster)
    run_jobs()
    assert_converged(aws, vault, cluster_api)


def test_key_created_but_never_stored_is_deleted_not_leaked(personas, cluster_api, aws, vault, aws_faults):
    """IAM allows two keys per user: a key whose secret was lost must not pile up across retries."""
    aws_faults.die_after("iam", "CreateAccessKey")
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    lost = aws.iam.list_access_keys(UserName="orgdns-acme")["AccessKeyMetadata"][0]["AccessKeyId"]

    aws_faults.heal()
    RegisterCluster.enqueue_again(cluster)
    run_jobs()
    keys = [k["AccessKeyId"] for k in aws.iam.list_access_keys(UserName="orgdns-acme")["AccessKeyMetadata"]]
    assert len(keys) == 1 and lost not in keys
