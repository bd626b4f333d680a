"""Deregistering: ExternalDNS leaves the cluster, the records the cluster owned leave the zone, nothing else does."""

import pytest
from django.conf import settings

from provisioning.models import Cluster, HostedZone, Operation
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters.jobs import DeregisterCluster
from tests.conftest import run_jobs, vault_tree

pytestmark = pytest.mark.django_db(transaction=True)


def owned_records(owner_id, zone_name, count, prefix):
    """What ExternalDNS (current TXT format) writes for `count` A records owned by owner_id."""
    changes = []
    for i in range(count):
        name = f"{prefix}{i}.{zone_name}"
        changes.append(_upsert(name, "A", f"10.0.{i // 250}.{i % 250 + 1}"))
        changes.append(
            _upsert(
                f"a-{name}",
                "TXT",
                f'"heritage=external-dns,external-dns/owner={owner_id},external-dns/resource=service/default/s{i}"',
            )
        )
    return changes


def _upsert(name, rtype, value):
    return {
        "Action": "UPSERT",
        "ResourceRecordSet": {"Name": name, "Type": rtype, "TTL": 300, "ResourceRecords": [{"Value": value}]},
    }


def write(aws, zone_id, changes):
    for start in range(0, len(changes), 400):
        aws.route53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Changes": changes[start : start + 400]}
        )


def all_records(aws, zone_id):
    records, params = [], {"HostedZoneId": zone_id}
    while True:
        page = aws.route53.list_resource_record_sets(**params)
        records += page["ResourceRecordSets"]
        if not page["IsTruncated"]:
            return records
        params.update(StartRecordName=page["NextRecordName"], StartRecordType=page["NextRecordType"])


def test_deregister_removes_externaldns_and_only_this_clusters_records(personas, make_cluster_api, aws, vault):
    api_one, api_two = make_cluster_api(), make_cluster_api()
    one, _ = clusters.register_cluster(personas.acme, "one", api_one.connection)
    two, _ = clusters.register_cluster(personas.acme, "two", api_two.connection)
    run_jobs()
    one.refresh_from_db()
    two.refresh_from_db()
    zone = HostedZone.objects.get()
    # 350 records of cluster one (700 record sets with their TXT: several pages), 20 of cluster two, one unmanaged.
    write(aws, zone.zone_id, owned_records(one.owner_id, zone.name, 350, "app"))
    write(aws, zone.zone_id, owned_records(two.owner_id, zone.name, 20, "web"))
    write(aws, zone.zone_id, [_upsert(f"manual.{zone.name}", "CNAME", "example.org")])

    operation = DeregisterCluster.enqueue(one)
    run_jobs()
    operation.refresh_from_db()
    one.refresh_from_db()

    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert one.state == Cluster.State.DEREGISTERED
    names = {(r["Name"], r["Type"]) for r in all_records(aws, zone.zone_id)}
    assert not any(name.startswith(("app", "a-app")) for name, _ in names)
    assert sum(1 for name, _ in names if name.startswith("web")) == 20
    assert sum(1 for name, _ in names if name.startswith("a-web")) == 20
    assert (f"manual.{zone.name}.", "CNAME") in names
    assert (f"{zone.name}.", "SOA") in names and (f"{zone.name}.", "NS") in names
    assert "deleted 700 record sets" in operation.log

    for plural in ("deployments", "secrets", "services"):
        assert api_one.objects(plural, "external-dns", "app.kubernetes.io/managed-by=orgdns") == []
    assert api_one.objects("clusterroles", selector="app.kubernetes.io/managed-by=orgdns") == []
    assert api_one.namespaces() == []  # and the bootstrap's objects stay the tenant's
    assert [sa["metadata"]["name"] for sa in api_one.objects("serviceaccounts", "external-dns")] == [
        "default",
        "external-dns",
        "orgdns",
    ]
    assert len(api_two.objects("deployments", "external-dns")) == 1
    paths = vault_tree(vault, settings.VAULT_PREFIX)
    assert not any(one.owner_id in p for p in paths)
    assert any(two.owner_id in p for p in paths)
    # The zone and credentials stay for the organization's other cluster.
    assert HostedZone.objects.get().state == HostedZone.State.ACTIVE
    assert len(aws.iam.list_access_keys(UserName="orgdns-acme")["AccessKeyMetadata"]) == 1


def test_a_deregistered_name_can_be_registered_again(personas, cluster_api):
    first, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    DeregisterCluster.enqueue(first)
    run_jobs()
    again, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    again.refresh_from_db()
    assert again.state == Cluster.State.READY and again.owner_id != first.owner_id


def test_deregistering_twice_is_refused(personas, cluster_api):
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    DeregisterCluster.enqueue(cluster)
    with pytest.raises(Exception, match="already being deregistered"):
        DeregisterCluster.enqueue(cluster)
    assert Operation.objects.filter(kind="deregister").count() == 1


def test_deregistering_while_provisioning_is_refused_and_a_stale_register_job_does_nothing(personas, cluster_api):
    cluster, register_op = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    with pytest.raises(Exception, match="still being provisioned"):
        DeregisterCluster.enqueue(cluster)
    run_jobs()
    DeregisterCluster.enqueue(cluster)
    run_jobs()
    # A register job that comes late (an RQ retry, a re-queued job) must not bring ExternalDNS back.
    from provisioning.services.operations.running import run as run_operation

    stale = Operation.objects.create(kind="register", organization=personas.acme, cluster=cluster)
    assert run_operation(str(stale.pk)) == Operation.State.FAILED
    stale.refresh_from_db()
    cluster.refresh_from_db()
    assert "is deregistered: nothing to provision" in stale.error
    assert cluster.state == Cluster.State.DEREGISTERED
    assert cluster_api.objects("deployments", "external-dns") == []


def test_objects_that_are_not_ours_are_never_replaced_or_deleted(personas, cluster_api):
    theirs = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "external-dns", "labels": {"team": "platform"}},
        "spec": {"ports": [{"port": 80}]},
    }
    cluster_api.cluster.api("POST", "/api/v1/namespaces/external-dns/services", theirs)
    cluster, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    operation.refresh_from_db()
    assert operation.state == Operation.State.FAILED
    assert "Service external-dns/external-dns already exists in the cluster and is not managed by orgdns" in (
        operation.error
    )
    (service,) = cluster_api.objects("services", "external-dns")
    assert service["metadata"]["labels"]["team"] == "platform"

    DeregisterCluster.enqueue(Cluster.objects.get(pk=cluster.pk))
    run_jobs()
    (service,) = cluster_api.objects("services", "external-dns")
    assert service["metadata"]["labels"]["team"] == "platform"
