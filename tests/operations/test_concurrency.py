"""Two clusters of a new organization, registered at once and run by two worker processes: one zone, one user."""

import django_rq
import pytest
from rq import Worker
from rq.job import Job

from provisioning.models import Cluster, HostedZone
from provisioning.services.clusters import actions as clusters
from tests.conftest import start_worker_process, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_workers_two_clusters_one_zone_one_user(personas, make_cluster_api, aws):
    connection = django_rq.get_connection("default")
    workers = [start_worker_process("--max-jobs", "1", "--max-idle-time", "60") for _ in (1, 2)]
    try:
        wait_until(lambda: len(Worker.all(connection=connection)) == 2)
        registered = [
            clusters.register_cluster(personas.acme, name, make_cluster_api().connection) for name in ("one", "two")
        ]
        for worker in workers:
            assert worker.wait(timeout=90) == 0
    finally:
        for worker in workers:
            worker.kill() if worker.poll() is None else None

    job_workers = {Job.fetch(str(op.pk), connection=connection).worker_name for _, op in registered}
    assert len(job_workers) == 2  # each job ran in its own worker process
    assert set(Cluster.objects.values_list("state", flat=True)) == {Cluster.State.READY}
    assert HostedZone.objects.count() == 1
    assert len(aws.route53.list_hosted_zones()["HostedZones"]) == 1
    assert [u["UserName"] for u in aws.iam.list_users()["Users"]] == ["orgdns-acme"]
    assert len(aws.iam.list_access_keys(UserName="orgdns-acme")["AccessKeyMetadata"]) == 1
