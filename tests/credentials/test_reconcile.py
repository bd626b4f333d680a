"""`reconcile`: what orgdns made but no row points at — in the real OpenBao, moto and clusters — is listed by a dry run,
removed by --apply (or, a zone its organization lacks, adopted), and nothing without orgdns's marks, nothing young and
nothing of a busy organization is touched."""

import json
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from provisioning.clients import tls
from provisioning.models import AuditEvent, Certificate, Cluster, HostedZone, Operation, Organization
from provisioning.services.backends import vault_root
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import actions as clusters
from provisioning.services.operations.leases import organization_lock
from provisioning.services.zones.setup import CREATED_AT_TAG
from tests.conftest import run_jobs, vault_tree, wait_until
from tests.operations.test_faults import frozen

pytestmark = pytest.mark.django_db(transaction=True)

OURS = "orgdns"  # ORGDNS_RESOURCE_PREFIX in the suite


def reconcile(*args):
    out = StringIO()
    call_command("reconcile", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def listed(report, held=False):
    return {(o["kind"], o["name"]) for o in report["orphans"] if bool(o["held"]) == held}


def put_secret(vault, path, data=None):
    """A write as a timed-out form (or a killed job) leaves it: in Vault, with no row."""
    vault.secrets.kv.v2.create_or_update_secret(
        path=f"{vault_root()}/{path}", secret=data or {"x": "y"}, mount_point="secret"
    )


def our_tags(org, created_at=None):
    tags = {"orgdns:managed-by": OURS, "orgdns:organization": org, "orgdns:deployment": settings.ORGDNS_DEPLOYMENT_ID}
    if created_at:
        tags[CREATED_AT_TAG] = created_at.isoformat()
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def make_user(aws, name, tags=()):
    aws.iam.create_user(UserName=name, Tags=list(tags))
    aws.iam.put_user_policy(
        UserName=name,
        PolicyName="p",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "route53:ListHostedZones", "Resource": "*"}],
            }
        ),
    )
    aws.iam.create_access_key(UserName=name)


def make_zone(aws, name, tags=(), records=()):
    zone_id = aws.route53.create_hosted_zone(Name=name, CallerReference=f"test-{name}-{len(tags)}")["HostedZone"][
        "Id"
    ].split("/")[-1]
    if tags:
        aws.route53.change_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id, AddTags=list(tags))
    for record in records:
        aws.route53.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": record,
                            "Type": "A",
                            "TTL": 60,
                            "ResourceRecords": [{"Value": "192.0.2.1"}],
                        },
                    }
                ]
            },
        )
    return zone_id


def zones(aws):
    return sorted((z["Name"], z["Id"].split("/")[-1]) for z in aws.route53.list_hosted_zones()["HostedZones"])


def users(aws):
    return sorted(u["UserName"] for u in aws.iam.list_users()["Users"])


def secret_manifest(name, namespace, labels):
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "stringData": {"tls.crt": "x", "tls.key": "y"},
    }


def test_orphans_are_listed_then_removed_and_lookalikes_left_alone(personas, cluster_api, aws, vault):
    acme, globex = personas.acme, personas.globex
    cluster_api.allow_certificates("web")
    prod, _ = clusters.register_cluster(acme, "prod", cluster_api.connection)
    run_jobs()
    prod.refresh_from_db()
    assert prod.state == Cluster.State.READY, prod.message
    acme_zone = HostedZone.objects.get(organization=acme)

    # A certificate deleted, and then its Secret put back by a race; the database knows the place because another
    # certificate is to go there (its install is refused: the Secret there is not its).
    deleted, _ = certificates.issue_certificate(acme, ["www.acme.orgdns.test"], [(prod, "web", "www-tls")])
    run_jobs()
    certificates.delete_certificate(Certificate.objects.get(pk=deleted.pk))
    run_jobs()
    assert Certificate.objects.get(pk=deleted.pk).state == Certificate.State.DELETED
    race = secret_manifest(
        "www-tls",
        "web",
        {**tls.MANAGED_BY, tls.DEPLOYMENT_LABEL: settings.ORGDNS_DEPLOYMENT_ID, tls.CERTIFICATE_LABEL: str(deleted.pk)},
    )
    cluster_api.cluster.api("POST", "/api/v1/namespaces/web/secrets", race)
    # Someone else's Secret, unlabelled, where the database also has a certificate to go.
    cluster_api.cluster.api(
        "POST", "/api/v1/namespaces/web/secrets", secret_manifest("plain-tls", "web", {"app": "mine"})
    )
    certificates.issue_certificate(
        acme, ["www.acme.orgdns.test"], [(prod, "web", "www-tls"), (prod, "web", "plain-tls")]
    )
    run_jobs()
    live = Certificate.objects.exclude(state=Certificate.State.DELETED).get()
    assert live.installations.filter(state="failed").count() == 2

    # Vault: a timed-out registration's credentials, a CA of an organization that is gone, an AWS key of an
    # organization that has no zone; a path orgdns does not write, left alone.
    prefix = vault_root()
    put_secret(vault, "orgs/acme/clusters/acme-ghost-0bad1dea", {"server": "https://x", "token": "t"})
    put_secret(vault, "orgs/gone/tls/ca")
    put_secret(vault, "orgs/globex/aws")
    put_secret(vault, "orgs/acme/notes")
    # IAM: ours without a row (one of an organization that exists, one of an organization that does not); look-alikes.
    make_user(aws, "orgdns-globex", our_tags("globex"))
    make_user(aws, "orgdns-gone", our_tags("gone"))
    make_user(aws, "orgdns-foo")  # our name, not our tags
    make_user(
        aws,
        "orgdns-bar",
        [{"Key": "orgdns:managed-by", "Value": "someone-else"}, {"Key": "orgdns:organization", "Value": "bar"}],
    )
    make_user(aws, "deploy-bot", our_tags("acme"))  # our tags, not our name
    # Route53: ours without a row — adopted (globex exists and has no zone), deleted (its organization is gone; a
    # second zone of acme's); look-alikes without our tags.
    paid_at = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    globex_zone = make_zone(aws, "globex.orgdns.test", our_tags("globex", paid_at))
    make_zone(aws, "gone.orgdns.test", our_tags("gone", paid_at), records=["www.gone.orgdns.test"])
    make_zone(aws, "acme.orgdns.test", our_tags("acme", paid_at))
    untagged = make_zone(aws, "other.orgdns.test")
    make_zone(aws, "unrelated.example.com", our_tags("acme", paid_at))  # not under the base domain
    # An organization with an unfinished operation: its things are left for a later run.
    initech = Organization.objects.create(name="initech")
    Operation.objects.create(kind="register", organization=initech, state=Operation.State.RUNNING)
    put_secret(vault, "orgs/initech/aws")
    make_user(aws, "orgdns-initech", our_tags("initech"))

    tree, iam_users, route53_zones = vault_tree(vault, prefix), users(aws), zones(aws)
    ghost_zones = {
        z for z in route53_zones if z[0] in ("gone.orgdns.test.", "acme.orgdns.test.") and z[1] != acme_zone.zone_id
    }
    orphans = {
        ("vault", f"{prefix}/orgs/acme/clusters/acme-ghost-0bad1dea"),
        ("vault", f"{prefix}/orgs/gone/tls/ca"),
        ("vault", f"{prefix}/orgs/globex/aws"),
        ("iam-user", "orgdns-globex"),
        ("iam-user", "orgdns-gone"),
        ("zone", "globex.orgdns.test"),
        ("zone", "gone.orgdns.test"),
        ("zone", "acme.orgdns.test"),
        ("secret", "acme/prod/web/www-tls"),
    }

    young = reconcile()  # made just now, within the default grace — but for the zones, whose tag says when
    assert listed(young) == {o for o in orphans if o[0] == "zone"}
    assert orphans - listed(young) <= listed(young, held=True)

    dry = reconcile("--grace", "0")
    assert listed(dry) == orphans
    assert listed(dry, held=True) == {("vault", f"{prefix}/orgs/initech/aws"), ("iam-user", "orgdns-initech")}
    by_name = {o["name"]: o for o in dry["orphans"]}
    assert by_name["globex.orgdns.test"]["action"] == "adopt"
    assert by_name["gone.orgdns.test"]["action"] == "delete"
    assert (vault_tree(vault, prefix), users(aws), zones(aws)) == (tree, iam_users, route53_zones)  # nothing changed
    assert [s["metadata"]["name"] for s in cluster_api.objects("secrets", "web")] == ["plain-tls", "www-tls"]

    applied = reconcile("--apply", "--grace", "0")
    assert listed(applied) == orphans
    assert all(
        o["outcome"] and not o["outcome"].startswith(("failed", "left")) for o in applied["orphans"] if not o["held"]
    )
    assert set(vault_tree(vault, prefix)) == set(tree) - {name for kind, name in orphans if kind == "vault"}
    assert users(aws) == ["deploy-bot", "orgdns-acme", "orgdns-bar", "orgdns-foo", "orgdns-initech"]
    assert set(zones(aws)) == set(route53_zones) - ghost_zones
    assert (globex_zone, "globex.orgdns.test.") in {(i, n) for n, i in zones(aws)} and untagged in {
        i for _, i in zones(aws)
    }
    adopted = HostedZone.objects.get(organization=globex)
    assert (adopted.state, adopted.zone_id, adopted.aws_created_at) == (HostedZone.State.ACTIVE, globex_zone, paid_at)
    assert [s["metadata"]["name"] for s in cluster_api.objects("secrets", "web")] == ["plain-tls"]

    again = reconcile("--apply", "--grace", "0")
    assert listed(again) == set()
    assert listed(again, held=True) == {("vault", f"{prefix}/orgs/initech/aws"), ("iam-user", "orgdns-initech")}

    # The adopted zone is the GC's now: unused and paid for this month, it is kept until the month's final window.
    out = StringIO()
    call_command("gc_hosted_zones", "--dry-run", "--now", "2026-11-15T12:00Z", stdout=out)
    (line,) = [line for line in out.getvalue().splitlines() if "globex.orgdns.test" in line]
    assert line.startswith("keep") and "[not before 2026-11-30" in line, line
    # The place the race held is free again: the live certificate installs there now.
    certificates.install_certificate(live, prod, "web", "www-tls")
    run_jobs()
    assert live.installations.get(secret_name="www-tls").state == "installed"


def test_the_dry_run_prints_a_line_per_orphan_and_a_summary(personas, vault):
    put_secret(vault, "orgs/gone/tls/ca")
    out = StringIO()
    call_command("reconcile", "--grace", "0", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(
        f"delete  vault     {vault_root()}/orgs/gone/tls/ca  org gone  organization gone does not exist"
    )
    assert lines[-1] == "1 orphans, 0 left for a later run; dry run: nothing changed (--apply removes them)."
    assert vault_tree(vault, settings.VAULT_PREFIX) == [f"{vault_root()}/orgs/gone/tls/ca"]


def test_a_credentials_write_that_lands_after_the_form_gave_up_is_removed(
    personas, cluster_api, servers, client, vault
):
    client.force_login(personas.alice)
    with frozen(servers.bao):
        response = client.post(
            reverse("cluster-register", args=["acme"]),
            {
                "name": "prod",
                "api_server": cluster_api.connection.server,
                "ca_pem": cluster_api.connection.ca_pem,
                "token": cluster_api.connection.token,
            },
        )
    assert "is not answering" in response.content.decode()
    assert not Cluster.objects.exists()
    clusters_path = f"{vault_root()}/orgs/acme/clusters"
    # OpenBao runs again and serves what the form sent and gave up on: the write and then the form's destroy, which
    # it serves concurrently — whichever lands last decides whether the credentials stay.
    wait_until(lambda: not requests_given_up_on(urlsplit(servers.vault_url).port), timeout=60)
    landed = {("vault", path) for path in vault_tree(vault, clusters_path)}

    assert listed(reconcile(), held=True) == landed  # within the grace, a registration may still be under way: left
    assert listed(reconcile("--apply", "--grace", "0")) == landed
    assert vault_tree(vault, clusters_path) == []


def requests_given_up_on(port):
    """The server's connections whose client has closed them (CLOSE_WAIT): each holds a request the server has not
    finished serving yet (it closes its end once its handler has returned)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return [row for row in rows if int(row[1].split(":")[1], 16) == port and row[3] == "08"]


def test_grace_must_not_be_negative(personas):
    with pytest.raises(CommandError, match="--grace -1"):
        call_command("reconcile", "--grace", "-1")


def test_a_cluster_that_cannot_be_read_is_reported_and_the_rest_still_done(personas, vault):
    cluster = Cluster.objects.create(
        organization=personas.acme,
        name="prod",
        api_server="https://prod.example",
        owner_id="acme-prod-1",
        state=Cluster.State.READY,
    )  # its credentials are not in Vault
    certificate = Certificate.objects.create(
        organization=personas.acme, dns_names=["www.acme.orgdns.test"], state=Certificate.State.ACTIVE
    )
    certificate.installations.create(cluster=cluster, namespace="web", secret_name="www-tls")
    put_secret(vault, "orgs/gone/tls/ca")

    report = reconcile("--apply", "--grace", "0")
    assert report["problems"] == [
        "cluster acme/prod: the cluster's credentials are missing from Vault: register the cluster again"
    ]
    assert listed(report) == {("vault", f"{vault_root()}/orgs/gone/tls/ca")}
    assert vault_tree(vault, settings.VAULT_PREFIX) == []


def test_nothing_is_removed_while_another_holds_the_organization_lock(personas, vault, settings):
    settings.ORGDNS_ORG_LOCK_WAIT = 1
    put_secret(vault, "orgs/acme/clusters/acme-ghost-0bad1dea")
    out = StringIO()
    with organization_lock(personas.acme), pytest.raises(CommandError, match="1 removals failed"):
        call_command("reconcile", "--apply", "--grace", "0", stdout=out)
    assert (
        "failed: organization acme is busy with another operation (a request being served); will retry"
        in out.getvalue()
    )
    assert vault_tree(vault, settings.VAULT_PREFIX) == [f"{vault_root()}/orgs/acme/clusters/acme-ghost-0bad1dea"]
    assert AuditEvent.objects.get(action="reconcile.delete").outcome == AuditEvent.Outcome.FAILED

    call_command("reconcile", "--apply", "--grace", "0", stdout=StringIO())
    assert vault_tree(vault, settings.VAULT_PREFIX) == []
    assert AuditEvent.objects.filter(action="reconcile.delete", outcome=AuditEvent.Outcome.OK).count() == 1
