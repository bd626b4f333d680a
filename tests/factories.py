"""Test data. A cluster registered the real way (its register job run to the end, against a real cluster, moto and
Vault), for tests of what registration does; and rows made directly, for tests of pages and rules that only read them.
"""

from django.utils import timezone

from provisioning.models import Cluster, HostedZone, Operation
from provisioning.services.clusters import actions as clusters
from tests.conftest import run_jobs


def attempt_registration(org, name, api, user=None):
    """Registers the cluster behind `api` (a `cluster_api`) and runs the jobs: (cluster, operation) as they ended."""
    cluster, operation = clusters.register_cluster(org, name, api.connection, user)
    run_jobs()
    cluster.refresh_from_db()
    operation.refresh_from_db()
    return cluster, operation


def register(org, name, api, user=None):
    """A ready cluster, registered the real way."""
    cluster, _ = attempt_registration(org, name, api, user)
    assert cluster.state == Cluster.State.READY, cluster.message
    return cluster


# --- rows only: nothing in AWS, Vault or a cluster ---------------------------------------------------------------


def zone_row(org, created=None, **fields):
    """An active zone of the organization, as its register job leaves it (IAM user, access key, name servers)."""
    created = created or timezone.now()
    return HostedZone.objects.create(
        **{
            "organization": org,
            "name": org.zone_name,
            "state": HostedZone.State.ACTIVE,
            "zone_id": f"Z{org.name.upper()}",
            "name_servers": [f"ns-1.{org.name}.example", f"ns-2.{org.name}.example"],
            "aws_created_at": created,
            "iam_user_name": f"orgdns-{org.name}",
            "access_key_id": f"AKIA{org.name.upper()}",
            "access_key_created_at": created,
            **fields,
        }
    )


def cluster_row(org, name="prod", **fields):
    """A ready cluster of the organization."""
    return Cluster.objects.create(
        **{
            "organization": org,
            "name": name,
            "api_server": f"https://{name}.{org.name}.example:6443",
            "owner_id": f"{org.name}-{name}",
            "state": Cluster.State.READY,
            **fields,
        }
    )


def operation_row(cluster, kind="register", state=Operation.State.SUCCEEDED, **fields):
    """An operation on the cluster, ended (by default) as its job would have ended it."""
    return Operation.objects.create(
        **{
            "kind": kind,
            "organization": cluster.organization,
            "cluster": cluster,
            "state": state,
            "progress": 100 if state == Operation.State.SUCCEEDED else 0,
            "finished_at": timezone.now() if state in (Operation.State.SUCCEEDED, Operation.State.FAILED) else None,
            **fields,
        }
    )


def registered_rows(org, name="prod", user=None):
    """What a successful registration leaves in the database: the organization's zone, the ready cluster and its
    succeeded register operation. The cluster is returned."""
    if not org.zones.exists():
        zone_row(org)
    cluster = cluster_row(org, name, registered_by=user)
    operation_row(cluster, created_by=user, step="done")
    return cluster
