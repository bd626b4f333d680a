"""A refused registration keeps nothing of the tenant's (issue 23, item 8): the Vault write a registration gave up on
may land after the form said "nothing was saved"; the sweep destroys it within its next run, and keeps a registered
cluster's."""

import io
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.urls import reverse

from devstack.stallproxy import StallProxy
from provisioning.models import Cluster, PendingVaultWrite
from provisioning.services.backends import Backends
from provisioning.services.vault_paths import cluster_secret_path
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
    landed = vault.secrets.kv.v2.read_secret_version(path=pending.path, mount_point="secret")["data"]["data"]
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
