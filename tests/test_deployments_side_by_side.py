"""Two deployments of orgdns sharing one AWS account (moto), one Vault (the same prefix and token) side by side
(issue 23, item 5): each provisions its organization, then runs `reconcile --apply`, the zone GC and an offboarding;
neither touches the other's zones, IAM users or Vault secrets.

Deployment A is this test process (its database, ORGDNS_DEPLOYMENT_ID orgdns-test). Deployment B is `manage.py`
processes with settings of their own: another database (SQLite), another Redis database, another base domain and
deployment id — as staging beside production."""

import io
import subprocess

import pytest
import redis
from django.conf import settings
from django.core.management import call_command

from provisioning.models import Cluster, Organization
from provisioning.services.backends import Backends, vault_root
from provisioning.services.certificates import actions as certificates
from provisioning.services.certificates.jobs import ensure_ca
from provisioning.services.clusters import actions as clusters
from provisioning.services.organizations import offboarding
from provisioning.services.zones import setup as zone_setup
from tests.conftest import manage_command, manage_env, run_jobs, vault_tree
from tests.settings import claim_redis_database

pytestmark = pytest.mark.django_db(transaction=True)


def provision(org_name):
    """What a first registration makes in AWS and Vault for an organization (its zone, its IAM user and key, the key in
    Vault) and its CA (Vault), through the same services — no cluster needed."""
    org = Organization.objects.create(name=org_name)
    backends = Backends()
    zone = zone_setup.ensure_zone(org, backends, zone_setup.NoProgress())
    vault = backends.vault()
    zone_setup.ensure_credentials(zone, vault, backends, zone_setup.NoProgress())
    ensure_ca(org, vault, zone_setup.NoProgress())


class DeploymentB:
    def __init__(self, tmp_path):
        redis_url = claim_redis_database()
        redis.Redis.from_url(redis_url).flushdb()
        self.env = manage_env(
            DATABASE_URL=f"sqlite:///{tmp_path / 'staging.sqlite3'}",
            REDIS_URL=redis_url,
            ORGDNS_BASE_DOMAIN="staging.orgdns.test",
            ORGDNS_DEPLOYMENT_ID="staging",
        )
        self.manage("migrate", "--verbosity", "0")

    def manage(self, *args):
        done = subprocess.run(
            manage_command(*args), cwd=settings.BASE_DIR, env=self.env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def run(self, code):
        return self.manage("shell", "--command", code)


def resources(aws, vault):
    """(IAM users with their orgdns:deployment tag, hosted zones by name, Vault paths) in the shared account and Vault."""
    users = {}
    for user in aws.iam.list_users()["Users"]:
        tags = {t["Key"]: t["Value"] for t in aws.iam.list_user_tags(UserName=user["UserName"])["Tags"]}
        users[user["UserName"]] = tags.get("orgdns:deployment")
    zones = {z["Name"] for z in aws.route53.list_hosted_zones()["HostedZones"]}
    return users, zones, set(vault_tree(vault, settings.VAULT_PREFIX))


def of(deployment, found, vault_prefix):
    users, zones, paths = found
    suffix = {"a": ".orgdns.test.", "b": ".staging.orgdns.test."}[deployment]
    ours = {name for name in zones if name.endswith(suffix) and (deployment == "b" or ".staging." not in name)}
    return (
        {name for name, tag in users.items() if tag == {"a": "orgdns-test", "b": "staging"}[deployment]},
        ours,
        {p for p in paths if p.startswith(f"{vault_prefix}/")},
    )


def test_two_deployments_sharing_an_account_and_a_vault_never_touch_each_others_things(aws, vault, tmp_path):
    staging = DeploymentB(tmp_path)
    root_a, root_b = vault_root(), f"{settings.VAULT_PREFIX}/staging"

    provision("acme")
    staging.run("from tests.test_deployments_side_by_side import provision; provision('initech')")

    found = resources(aws, vault)
    a, b = of("a", found, root_a), of("b", found, root_b)
    assert a == (
        {"orgdns-acme"},
        {"acme.orgdns.test."},
        {f"{root_a}/orgs/acme/aws", f"{root_a}/orgs/acme/tls/ca"},
    )
    assert b == (
        {"orgdns-initech"},
        {"initech.staging.orgdns.test."},
        {f"{root_b}/orgs/initech/aws", f"{root_b}/orgs/initech/tls/ca"},
    )
    assert found[2] == a[2] | b[2]

    # Each reconciles, with no grace: neither takes the other's things for its orphans.
    call_command("reconcile", "--apply", "--grace", "0")
    report = staging.manage("reconcile", "--apply", "--grace", "0")
    assert "acme" not in report
    found = resources(aws, vault)
    assert (of("a", found, root_a), of("b", found, root_b)) == (a, b)

    # Each runs its zone GC (each deletes its own unused zone, IAM user and key: free while young).
    call_command("gc_hosted_zones")
    run_jobs()
    found = resources(aws, vault)
    assert of("b", found, root_b) == b
    a = of("a", found, root_a)
    assert a == (set(), set(), {f"{root_a}/orgs/acme/tls/ca"})
    staging.manage("gc_hosted_zones")
    staging.manage("rqworker", "--burst", "default")
    found = resources(aws, vault)
    assert of("a", found, root_a) == a
    b = of("b", found, root_b)
    assert b == (set(), set(), {f"{root_b}/orgs/initech/tls/ca"})

    # Each provisions again, then B offboards its organization: A's things stay.
    zone_setup.ensure_zone(Organization.objects.get(name="acme"), Backends(), zone_setup.NoProgress())
    staging.run(
        "from provisioning.models import Organization; from provisioning.services.zones import setup as zone_setup; "
        "from provisioning.services.backends import Backends; "
        "zone_setup.ensure_zone(Organization.objects.get(name='initech'), Backends(), zone_setup.NoProgress())"
    )
    found = resources(aws, vault)
    a, b = of("a", found, root_a), of("b", found, root_b)
    assert a[1] == {"acme.orgdns.test."} and b[1] == {"initech.staging.orgdns.test."}
    staging.manage("offboard_organization", "initech")
    staging.manage("rqworker", "--burst", "default")
    found = resources(aws, vault)
    assert of("a", found, root_a) == a
    assert of("b", found, root_b)[2] == set()
    b = of("b", found, root_b)  # its zone is left to B's GC, which deletes it when that costs least

    # A reconciles again, then offboards its own: what is left of B's stays.
    call_command("reconcile", "--apply", "--grace", "0")
    offboarding.offboard_organization(Organization.objects.get(name="acme"), "acme")
    run_jobs()
    found = resources(aws, vault)
    assert of("a", found, root_a)[2] == set()
    assert of("b", found, root_b) == b


# --- upgrading: adopt_deployment_marks --------------------------------------------------------------------------------


def as_before_deployment_ids(aws, vault, org_name):
    """Take the deployment's marks off what provision() made, as an orgdns from before deployment ids left it."""
    zone_id = next(
        z["Id"].split("/")[-1]
        for z in aws.route53.list_hosted_zones()["HostedZones"]
        if z["Name"] == f"{org_name}.orgdns.test."
    )
    aws.route53.change_tags_for_resource(
        ResourceType="hostedzone", ResourceId=zone_id, RemoveTagKeys=["orgdns:deployment"]
    )
    aws.iam.untag_user(UserName=f"orgdns-{org_name}", TagKeys=["orgdns:deployment"])
    kv = vault.secrets.kv.v2
    for path in vault_tree(vault, f"{vault_root()}/orgs/{org_name}"):
        data = kv.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)["data"]["data"]
        kv.create_or_update_secret(
            path=path.replace(vault_root(), settings.VAULT_PREFIX), secret=data, mount_point="secret"
        )
        kv.delete_metadata_and_all_versions(path=path, mount_point="secret")
    return zone_id


def adopt(*options):
    out = io.StringIO()
    call_command("adopt_deployment_marks", *options, stdout=out)
    return out.getvalue()


def test_upgrading_moves_this_deployments_things_onto_its_marks_and_nothing_else(aws, vault):
    provision("acme")
    zone_id = as_before_deployment_ids(aws, vault, "acme")
    # Another deployment's, from before deployment ids too, in the same account and Vault: not ours to move.
    aws.iam.create_user(
        UserName="orgdns-initech",
        Tags=[{"Key": "orgdns:managed-by", "Value": "orgdns"}, {"Key": "orgdns:organization", "Value": "initech"}],
    )
    vault.secrets.kv.v2.create_or_update_secret(
        path=f"{settings.VAULT_PREFIX}/orgs/initech/aws", secret={"access_key_id": "x"}, mount_point="secret"
    )
    before = resources(aws, vault)
    legacy = {f"{settings.VAULT_PREFIX}/orgs/acme/aws", f"{settings.VAULT_PREFIX}/orgs/acme/tls/ca"}
    assert legacy < before[2]

    # Until it runs, reconcile finds nothing of acme's to remove (the older marks are not this deployment's).
    call_command("reconcile", "--apply", "--grace", "0", stdout=io.StringIO())
    assert resources(aws, vault) == before

    dry = adopt()
    assert f"vault {settings.VAULT_PREFIX}/orgs/acme/aws: would move to {vault_root()}/orgs/acme/aws" in dry
    assert f"zone acme.orgdns.test ({zone_id}): would tag orgdns:deployment=orgdns-test" in dry
    assert "IAM user orgdns-acme: would tag orgdns:deployment=orgdns-test" in dry
    assert "initech" not in dry and "Nothing was changed" in dry
    assert resources(aws, vault) == before

    done = adopt("--apply")
    assert "IAM user orgdns-acme: tagged orgdns:deployment=orgdns-test" in done
    users, zones, paths = resources(aws, vault)
    assert users == {"orgdns-acme": "orgdns-test", "orgdns-initech": None}
    assert paths == {
        f"{vault_root()}/orgs/acme/aws",
        f"{vault_root()}/orgs/acme/tls/ca",
        f"{settings.VAULT_PREFIX}/orgs/initech/aws",
    }
    tags = aws.route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)["ResourceTagSet"]["Tags"]
    assert {"Key": "orgdns:deployment", "Value": "orgdns-test"} in tags
    # The key still works from its new place: the credentials are read back as the jobs read them.
    assert zone_setup.ensure_credentials(
        Organization.objects.get(name="acme").zones.get(), Backends().vault(), Backends(), zone_setup.NoProgress()
    )["access_key_id"]

    assert adopt("--apply").strip() == "Everything of this deployment's already carries its marks."


def test_upgrading_labels_the_certificate_secrets_this_deployment_installed(personas, cluster_api, vault):
    cluster_api.allow_certificates("web")
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    certificate, _ = certificates.issue_certificate(
        personas.acme, ["www.acme.orgdns.test"], [(Cluster.objects.get(pk=cluster.pk), "web", "www-tls")]
    )
    run_jobs()
    # As an orgdns from before deployment ids labelled it; and someone else's Secret beside it, labelled by no one.
    path = "/api/v1/namespaces/web/secrets/www-tls"
    unlabel = {"metadata": {"labels": {"orgdns.io/deployment": None}}}
    cluster_api.cluster.api("PATCH", path, unlabel, content_type="application/merge-patch+json")
    assert "orgdns.io/deployment" not in cluster_api.cluster.api("GET", path)["metadata"]["labels"]

    assert "Secret web/www-tls in acme/prod: would label orgdns.io/deployment=orgdns-test" in adopt()
    assert "orgdns.io/deployment" not in cluster_api.cluster.api("GET", path)["metadata"]["labels"]
    assert "Secret web/www-tls in acme/prod: labelled orgdns.io/deployment=orgdns-test" in adopt("--apply")
    labels = cluster_api.cluster.api("GET", path)["metadata"]["labels"]
    assert labels["orgdns.io/deployment"] == "orgdns-test"
    assert labels["orgdns.io/certificate"] == str(certificate.pk)
    assert "Secret" not in adopt("--apply")
