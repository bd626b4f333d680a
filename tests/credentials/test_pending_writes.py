"""A refused registration keeps nothing of the tenant's (issue 23, item 8): the Vault write a registration gave up on
may land after the form said "nothing was saved"; the sweep destroys it within its next run, and keeps a registered
cluster's."""

import io
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection, transaction
from django.urls import reverse

from devstack.stallproxy import StallProxy
from provisioning.models import Cluster, PendingVaultWrite
from provisioning.services.backends import Backends, vault_root
from provisioning.services.credentials import pending_writes
from provisioning.services.credentials.vault_paths import cluster_secret_path
from tests.conftest import vault_tree

pytestmark = pytest.mark.django_db(transaction=True)

GAVE_UP = "the cluster was not registered and nothing was saved"


@pytest.fixture
def stalling_vault(settings, stack):
    """orgdns reaches the real OpenBao through a proxy that can stall."""
    target = urlsplit(stack.vault_url)
    proxy = StallProxy(target.hostname, target.port)
    settings.VAULT_ADDR = proxy.url
    settings.ORGDNS_REQUEST_VAULT_TIMEOUT = 1
    yield proxy
    proxy.stop()


def post_registration(client, user, api):
    client.force_login(user)
    return client.post(
        reverse("cluster-register", args=["acme"]),
        {
            "name": "prod",
            "api_server": api.connection.server,
            "ca_pem": api.connection.ca_pem,
            "token": api.connection.token,
        },
    )


def sweep():
    out = io.StringIO()
    call_command("sweep_operations", "--grace", "0", stdout=out)
    return out.getvalue()


def test_a_write_that_lands_after_the_form_gave_up_is_destroyed_by_the_next_sweep(
    personas, cluster_api, stalling_vault, vault, client
):
    stalling_vault.stall()
    response = post_registration(client, personas.alice, cluster_api)
    assert GAVE_UP in response.content.decode()
    assert not Cluster.objects.exists()
    [pending] = PendingVaultWrite.objects.all()
    assert pending.organization == personas.acme and "/orgs/acme/clusters/acme-prod-" in pending.path

    # Vault gets the write only now, after the form answered (the destroy the form also tried never arrives).
    stalling_vault.resume()
    assert stalling_vault.deliver(b"POST /v1/secret/data/") >= 1
    landed = vault.secrets.kv.v2.read_secret_version(
        path=pending.path, mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert landed["token"] == cluster_api.connection.token

    out = sweep()

    assert f"Vault {pending.path}: no registration owns it: destroyed, with every version" in out
    assert vault_tree(vault, django_settings.VAULT_PREFIX) == []
    # Watched a while longer: a write delivered even later is destroyed by a later sweep.
    assert PendingVaultWrite.objects.get().destroyed_at is not None


def test_the_watch_ends_after_its_time(personas, cluster_api, stalling_vault, vault, client, settings):
    stalling_vault.stall()
    post_registration(client, personas.alice, cluster_api)
    stalling_vault.resume()
    settings.ORGDNS_PENDING_WRITE_WATCH = timedelta(0)
    stalling_vault.deliver(b"POST /v1/secret/data/")

    out = sweep()

    assert "destroyed, with every version" in out and "no longer watched" in out
    assert not PendingVaultWrite.objects.exists()
    assert vault_tree(vault, django_settings.VAULT_PREFIX) == []


def test_a_registered_clusters_secret_is_kept_by_the_sweep(personas, cluster_api, stalling_vault, vault, client):
    response = post_registration(client, personas.alice, cluster_api)
    assert response.status_code == 302
    cluster = Cluster.objects.get()
    assert not PendingVaultWrite.objects.exists()  # forgotten with the registration's commit

    # Even a record left behind (a registration saved by an older orgdns, say) does not cost a registered cluster its
    # credentials.
    path = cluster_secret_path(Backends().vault(), cluster)
    PendingVaultWrite.objects.create(path=path, organization=personas.acme)

    out = sweep()

    assert f"Vault {path}: kept: a registration owns it" in out
    assert vault_tree(vault, django_settings.VAULT_PREFIX) == [path]
    assert not PendingVaultWrite.objects.exists()


def test_the_sweep_leaves_a_write_under_way_alone(personas, vault):
    """A request that recorded its write holds the record until it ends: even with no grace, the sweep passes it by."""
    path = f"{vault_root()}/orgs/acme/clusters/acme-prod-0123abcd"
    write = pending_writes.record(path, personas.acme)
    vault.secrets.kv.v2.create_or_update_secret(path=path, secret={"token": "t"}, mount_point="secret")
    holding, release = threading.Event(), threading.Event()

    def request():
        with transaction.atomic():
            pending_writes.hold(write)
            holding.set()
            release.wait(30)
        connection.close()

    thread = threading.Thread(target=request)
    thread.start()
    try:
        assert holding.wait(30)
        assert "Vault" not in sweep()
        assert vault_tree(vault, django_settings.VAULT_PREFIX) == [path]
    finally:
        release.set()
        thread.join()

    assert f"Vault {path}: no registration owns it: destroyed" in sweep()  # the request ended without saving
    assert vault_tree(vault, django_settings.VAULT_PREFIX) == []
