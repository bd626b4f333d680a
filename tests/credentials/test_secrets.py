"""No secret (AWS secret key, Vault token, cluster token) in the database, logs, job records, pages or errors."""

import io
import logging

import django_rq
import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from provisioning.services.backends import vault_root
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters.jobs import DeregisterCluster
from tests.conftest import VAULT_ROOT_TOKEN, run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def redis_dump():
    connection = django_rq.get_connection("default")
    dumped = []
    for key in connection.scan_iter():
        kind = connection.type(key)
        if kind == b"hash":
            dumped.append(repr(connection.hgetall(key)))
        elif kind == b"string":
            dumped.append(repr(connection.get(key)))
        elif kind == b"list":
            dumped.append(repr(connection.lrange(key, 0, -1)))
        elif kind == b"zset":
            dumped.append(repr(connection.zrange(key, 0, -1)))
        elif kind == b"set":
            dumped.append(repr(connection.smembers(key)))
    return "\n".join(dumped)


def test_secrets_appear_nowhere_but_vault_and_the_cluster(
    client, personas, make_cluster_api, vault, aws_faults, caplog
):
    caplog.set_level(logging.DEBUG)
    api, refusing = make_cluster_api(), make_cluster_api()
    cluster, _ = clusters.register_cluster(personas.acme, "prod", api.connection, personas.alice)
    failing, _ = clusters.register_cluster(personas.acme, "flaky", refusing.connection, personas.alice)
    refusing.revoke_token()  # the second cluster now refuses us: a failure path with an error message
    run_jobs()
    DeregisterCluster.enqueue(cluster)
    run_jobs()

    aws_secret = vault.secrets.kv.v2.read_secret_version(
        path=f"{vault_root()}/orgs/acme/aws", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]["secret_access_key"]
    secrets = {
        "aws secret key": aws_secret,
        "vault token": VAULT_ROOT_TOKEN,
        "orgdns's vault token": settings.VAULT_TOKEN,
        "cluster token": api.token,
        "other cluster token": refusing.connection.token,
    }

    database = io.StringIO()
    call_command("dumpdata", "provisioning", "auth", "admin", "sessions", stdout=database)
    client.force_login(personas.alice)
    pages = [
        client.get(url).content.decode()
        for url in (
            reverse("home"),
            reverse("organization", args=["acme"]),
            reverse("cluster", args=["acme", cluster.pk]),
            reverse("cluster", args=["acme", failing.pk]),
            *[reverse("operation", args=[op.pk]) for op in cluster.operations.all()],
        )
    ]
    personas.sam.is_superuser = True
    personas.sam.save()
    client.force_login(personas.sam)
    pages += [client.get(f"/admin/provisioning/{m}/").content.decode() for m in ("hostedzone", "cluster", "operation")]

    places = {
        "database": database.getvalue(),
        "redis (job records)": redis_dump(),
        "logs": caplog.text,
        "pages": "\n".join(pages),
    }
    assert "refused our token" in places["database"]  # the failure path was exercised
    for place, text in places.items():
        for what, secret in secrets.items():
            assert secret not in text, f"{what} found in {place}"
