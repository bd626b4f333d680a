"""TLS certificates end to end: service/pages → RQ job → OpenBao and the Kubernetes stand-in, checked with openssl."""

import base64
import datetime
import json
import subprocess
from io import StringIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from provisioning.clients import tls
from provisioning.models import AuditEvent, Certificate, CertificateInstallation, Cluster, Operation
from provisioning.services.backends import Backends, vault_root
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters.jobs import DeregisterCluster
from tests.conftest import run_jobs, vault_tree
from tests.factories import register

pytestmark = pytest.mark.django_db(transaction=True)

ZONE = "acme.orgdns.test"


@pytest.fixture
def acme_cluster(personas, cluster_api):
    for namespace in ("web", "apps", "default"):
        cluster_api.allow_certificates(namespace)  # the tenant lets orgdns install certificates there
    return register(personas.acme, "prod", cluster_api, personas.alice)


def issue(org, names, targets=(), user=None):
    certificate, operation = certificates.issue_certificate(org, names, targets, user)
    run_jobs()
    certificate.refresh_from_db()
    operation.refresh_from_db()
    return certificate, operation


def installed_secret(server, namespace, name):
    (secret,) = [s for s in server.objects("secrets", namespace) if s["metadata"]["name"] == name]
    return secret


def secret_files(server, namespace, name, directory):
    """The Secret's tls.crt, tls.key and ca.crt written to directory, as a pod would see them."""
    secret = installed_secret(server, namespace, name)
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    for key, value in secret["data"].items():
        (directory / key).write_bytes(base64.b64decode(value))
    return directory


def openssl(*args, cwd):
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)


def served_certificate(server, namespace, name):
    return x509.load_pem_x509_certificate(
        base64.b64decode(installed_secret(server, namespace, name)["data"]["tls.crt"])
    )


def sans(certificate):
    return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )


def test_installed_certificate_verifies_against_the_org_ca_with_the_names_asked(
    personas, acme_cluster, cluster_api, tmp_path
):
    names = ["www.acme.orgdns.test", "*.acme.orgdns.test", "acme.orgdns.test"]
    certificate, operation = issue(personas.acme, names, [(acme_cluster, "web", "www-tls")], personas.alice)

    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert operation.certificate_id == certificate.pk
    assert certificate.state == Certificate.State.ACTIVE
    files = secret_files(cluster_api, "web", "www-tls", tmp_path)
    verified = openssl("verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", "ca.crt", "tls.crt", cwd=files)
    assert verified.returncode == 0 and "tls.crt: OK" in verified.stdout, verified.stderr
    for hostname in ("www.acme.orgdns.test", "app.acme.orgdns.test", "acme.orgdns.test"):
        ok = openssl("verify", "-CAfile", "ca.crt", "-verify_hostname", hostname, "tls.crt", cwd=files)
        assert ok.returncode == 0, (hostname, ok.stderr)
    too_deep = openssl("verify", "-CAfile", "ca.crt", "-verify_hostname", "a.b.acme.orgdns.test", "tls.crt", cwd=files)
    assert too_deep.returncode != 0

    certificate_key = openssl("x509", "-noout", "-pubkey", "-in", "tls.crt", cwd=files).stdout
    private_key = openssl("pkey", "-pubout", "-in", "tls.key", cwd=files).stdout
    assert certificate_key and certificate_key == private_key

    served = served_certificate(cluster_api, "web", "www-tls")
    assert sans(served) == names
    assert format(served.serial_number, "X") == certificate.serial
    served_pem = served.public_bytes(serialization.Encoding.PEM).decode()
    assert tls.describe(served_pem).fingerprint_sha256 == certificate.fingerprint_sha256
    assert certificate.not_after - certificate.not_before == datetime.timedelta(days=90) + tls.BACKDATE
    installation = certificate.installations.get()
    assert (installation.state, installation.installed_serial) == (
        CertificateInstallation.State.INSTALLED,
        certificate.serial,
    )
    assert cluster_api.namespaces() == ["apps", "web"]  # the tenant made them; orgdns made none


def test_the_org_ca_is_a_name_constrained_ca_made_once(personas, vault, tmp_path):
    first, _ = issue(personas.acme, ["one.acme.orgdns.test"])
    second, _ = issue(personas.acme, ["two.acme.orgdns.test"])
    ca_pem = certificates.ca_certificate_pem(personas.acme)
    ca = x509.load_pem_x509_certificate(ca_pem.encode())

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > datetime.timedelta(days=3000)
    prefix = vault_root()
    assert sorted(vault_tree(vault, prefix)) == sorted(
        [
            f"{prefix}/orgs/acme/tls/ca",
            f"{prefix}/orgs/acme/tls/certs/{first.pk}",
            f"{prefix}/orgs/acme/tls/certs/{second.pk}",
        ]
    )
    # Even signed with the acme CA's own key, a certificate for another organization's name does not verify.
    stored_ca = vault.secrets.kv.v2.read_secret_version(
        path=f"{prefix}/orgs/acme/tls/ca", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    rogue = tls.issue_server_certificate(tls.KeyPair(**stored_ca), ["www.globex.orgdns.test"], "acme", 90)
    (tmp_path / "ca.crt").write_text(ca_pem)
    (tmp_path / "rogue.crt").write_text(rogue.certificate)
    refused = openssl("verify", "-CAfile", "ca.crt", "rogue.crt", cwd=tmp_path)
    assert refused.returncode != 0 and "permitted subtree violation" in refused.stderr


@pytest.mark.parametrize(
    "names, reason",
    [
        (["www.globex.orgdns.test"], "outside your zone"),
        (["evilacme.orgdns.test"], "outside your zone"),
        (["www.example.com"], "outside your zone"),
        (["bad_name.acme.orgdns.test"], "is not a DNS label"),
        (["-www.acme.orgdns.test"], "is not a DNS label"),
        (["www..acme.orgdns.test"], "is not a DNS label"),
        (["*.app.acme.orgdns.test"], "wildcard is allowed only"),
        (["w*.acme.orgdns.test"], "wildcard is allowed only"),
        (["*.*.acme.orgdns.test"], "wildcard is allowed only"),
        (["app.*.acme.orgdns.test"], "wildcard is allowed only"),
        ([f"{'a' * 64}.acme.orgdns.test"], "at most 63"),
        ([".".join(["a" * 60] * 4) + ".acme.orgdns.test"], "at most 253"),
        ([f"n{i}.acme.orgdns.test" for i in range(21)], "at most 20"),
        (["", "  "], "at least one"),
        (["ok.acme.orgdns.test", "not ok.acme.orgdns.test"], "is not a DNS label"),
    ],
)
def test_refused_names_change_nothing(personas, vault, names, reason):
    with pytest.raises(ValidationError) as refused:
        certificates.issue_certificate(personas.acme, names, user=personas.alice)
    assert reason in " ".join(refused.value.messages)
    assert not Certificate.objects.exists()
    assert not Operation.objects.exists()
    assert vault_tree(vault, settings.VAULT_PREFIX) == []


def test_refused_targets_change_nothing(personas, acme_cluster, make_cluster_api, vault):
    globex_cluster = register(personas.globex, "prod", make_cluster_api())
    operations_before = Operation.objects.count()
    for target, reason in [
        ((acme_cluster, "Bad_NS", "www-tls"), "Namespace"),
        ((acme_cluster, "web", "www_tls"), "Secret name"),
        ((globex_cluster, "web", "www-tls"), "does not belong to acme"),
    ]:
        with pytest.raises(ValidationError) as refused:
            certificates.issue_certificate(personas.acme, ["www.acme.orgdns.test"], [target], personas.alice)
        assert reason in refused.value.messages[0]
    assert not Certificate.objects.exists() and not CertificateInstallation.objects.exists()
    assert Operation.objects.count() == operations_before
    assert not [p for p in vault_tree(vault, settings.VAULT_PREFIX) if "/tls/" in p]


def test_renewal_replaces_the_certificate_in_every_cluster(personas, make_cluster_api, tmp_path):
    servers = [make_cluster_api(), make_cluster_api()]
    for server in servers:
        server.allow_certificates("web")
    targets = [(register(personas.acme, f"c{i}", server), "web", "www-tls") for i, server in enumerate(servers)]
    certificate, _ = issue(personas.acme, ["www.acme.orgdns.test"], targets)
    old_serial, old_key = certificate.serial, installed_secret(servers[0], "web", "www-tls")["data"]["tls.key"]

    operation = certificates.renew_certificate(certificate, personas.alice)
    run_jobs()
    operation.refresh_from_db()
    certificate.refresh_from_db()

    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert certificate.state == Certificate.State.ACTIVE and certificate.serial != old_serial
    for i, server in enumerate(servers):
        served = served_certificate(server, "web", "www-tls")
        assert format(served.serial_number, "X") == certificate.serial
        assert installed_secret(server, "web", "www-tls")["data"]["tls.key"] != old_key
        (tmp_path / str(i)).mkdir()
        files = secret_files(server, "web", "www-tls", tmp_path / str(i))
        assert openssl("verify", "-CAfile", "ca.crt", "tls.crt", cwd=files).returncode == 0
    assert set(certificate.installations.values_list("installed_serial", flat=True)) == {certificate.serial}


def test_a_cluster_registered_later_receives_an_existing_certificate(personas, acme_cluster, make_cluster_api):
    certificate, _ = issue(personas.acme, ["api.acme.orgdns.test"], [(acme_cluster, "default", "api-tls")])
    later_api = make_cluster_api()
    later_api.allow_certificates("apps")
    later = register(personas.acme, "later", later_api)

    operation = certificates.install_certificate(certificate, later, "apps", "api-tls", personas.alice)
    run_jobs()
    operation.refresh_from_db()

    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert (operation.cluster, operation.certificate) == (later, certificate)
    assert format(served_certificate(later_api, "apps", "api-tls").serial_number, "X") == certificate.serial
    assert sorted(str(i) for i in certificate.installations.all()) == ["later/apps/api-tls", "prod/default/api-tls"]


def test_a_secret_that_is_not_ours_is_never_overwritten(personas, acme_cluster, cluster_api):
    kube = Backends().cluster(cluster_api.admin_connection)  # the tenant's own Secret, where it lets orgdns write
    theirs = {"name": "www-tls", "namespace": "web"}
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": theirs, "stringData": {"tls.crt": "theirs"}})
    kube.close()

    certificate, operation = issue(personas.acme, ["www.acme.orgdns.test"], [(acme_cluster, "web", "www-tls")])

    assert operation.state == Operation.State.FAILED
    assert "already exists and does not hold this certificate" in operation.error
    installation = certificate.installations.get()
    assert installation.state == CertificateInstallation.State.FAILED and "already exists" in installation.message
    assert certificate.state == Certificate.State.ACTIVE and "Issue certificate failed" in certificate.message
    assert base64.b64decode(installed_secret(cluster_api, "web", "www-tls")["data"]["tls.crt"]) == b"theirs"


def test_a_failed_installation_can_be_retried(personas, acme_cluster, cluster_api, settings):
    settings.ORGDNS_RETRY_ATTEMPTS = 1
    certificate, operation = certificates.issue_certificate(
        personas.acme, ["www.acme.orgdns.test"], [(acme_cluster, "web", "www-tls")]
    )
    cluster_api.fail_next(1)
    run_jobs()
    operation.refresh_from_db()
    installation = certificate.installations.get()
    assert operation.state == Operation.State.FAILED and "answered 503" in operation.error
    assert installation.state == CertificateInstallation.State.FAILED and "answered 503" in installation.message

    retry = certificates.install_certificate(Certificate.objects.get(), acme_cluster, "web", "www-tls")
    run_jobs()
    retry.refresh_from_db()
    installation.refresh_from_db()
    assert retry.state == Operation.State.SUCCEEDED, retry.error
    assert installation.state == CertificateInstallation.State.INSTALLED and installation.message == ""
    assert certificate.installations.count() == 1


def test_a_retried_job_installs_what_it_issued_without_issuing_again(
    personas, acme_cluster, cluster_api, vault, settings
):
    settings.ORGDNS_RETRY_ATTEMPTS = 1
    settings.ORGDNS_JOB_RETRY_INTERVALS = [0]
    certificate, operation = certificates.issue_certificate(
        personas.acme, ["www.acme.orgdns.test"], [(acme_cluster, "web", "www-tls")]
    )
    cluster_api.fail_next(1)
    run_jobs()
    operation.refresh_from_db()
    certificate.refresh_from_db()

    assert operation.state == Operation.State.SUCCEEDED and operation.attempts == 2, operation.error
    assert "temporary failure, will retry" in operation.log and "was already issued by this operation" in operation.log
    assert format(served_certificate(cluster_api, "web", "www-tls").serial_number, "X") == certificate.serial
    metadata = vault.secrets.kv.v2.read_secret_metadata(
        path=f"{vault_root()}/orgs/acme/tls/certs/{certificate.pk}", mount_point="secret"
    )
    assert metadata["data"]["current_version"] == 1


def test_a_renewal_issues_anew_whatever_the_clocks_of_the_worker_and_the_web(personas, acme_cluster, vault):
    """Which operation issued the key and certificate is stored: the job does not compare its own clock (issued_at)
    with the web's (the operation's created_at). Here the worker that issued the first one ran an hour ahead."""
    certificate, _ = issue(personas.acme, ["www.acme.orgdns.test"], [(acme_cluster, "web", "www-tls")])
    first_serial = certificate.serial
    Certificate.objects.filter(pk=certificate.pk).update(issued_at=timezone.now() + datetime.timedelta(hours=1))
    renewal = certificates.renew_certificate(Certificate.objects.get(pk=certificate.pk))
    run_jobs()
    renewal.refresh_from_db()
    certificate.refresh_from_db()
    assert renewal.state == Operation.State.SUCCEEDED, renewal.error
    assert certificate.serial != first_serial and certificate.issued_by_id == renewal.pk
    assert "already issued" not in renewal.log


def test_a_retried_job_reuses_what_it_issued_when_the_web_clock_runs_ahead(
    personas, acme_cluster, cluster_api, vault, settings
):
    settings.ORGDNS_RETRY_ATTEMPTS = 1
    settings.ORGDNS_JOB_RETRY_INTERVALS = [0]
    certificate, operation = certificates.issue_certificate(
        personas.acme, ["www.acme.orgdns.test"], [(acme_cluster, "web", "www-tls")]
    )
    # The web that made the operation runs an hour ahead of the worker that issues.
    Operation.objects.filter(pk=operation.pk).update(created_at=timezone.now() + datetime.timedelta(hours=1))
    cluster_api.fail_next(1)
    run_jobs()
    operation.refresh_from_db()
    certificate.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED and operation.attempts == 2, operation.error
    assert "was already issued by this operation" in operation.log
    metadata = vault.secrets.kv.v2.read_secret_metadata(
        path=f"{vault_root()}/orgs/acme/tls/certs/{certificate.pk}", mount_point="secret"
    )
    assert metadata["data"]["current_version"] == 1


def test_deregistering_a_cluster_removes_the_certificates_installed_there(
    personas, acme_cluster, cluster_api, make_cluster_api
):
    other_api = make_cluster_api()
    other_api.allow_certificates("web")
    other = register(personas.acme, "other", other_api)
    certificate, _ = issue(
        personas.acme, ["www.acme.orgdns.test"], [(acme_cluster, "web", "www-tls"), (other, "web", "www-tls")]
    )
    deregistration = DeregisterCluster.enqueue(acme_cluster)
    run_jobs()
    deregistration.refresh_from_db()
    assert deregistration.state == Operation.State.SUCCEEDED, deregistration.error
    assert "prod/web/www-tls: Secret deleted" in deregistration.log
    assert cluster_api.objects("secrets", "web") == []
    assert [str(i) for i in certificate.installations.all()] == ["other/web/www-tls"]

    renewal = certificates.renew_certificate(certificate)
    run_jobs()
    renewal.refresh_from_db()
    certificate.refresh_from_db()
    assert renewal.state == Operation.State.SUCCEEDED, renewal.error
    assert format(served_certificate(other_api, "web", "www-tls").serial_number, "X") == certificate.serial
    assert cluster_api.objects("secrets", "web") == []

    deletion = certificates.delete_certificate(certificate)
    run_jobs()
    deletion.refresh_from_db()
    assert deletion.state == Operation.State.SUCCEEDED, deletion.error
    assert not CertificateInstallation.objects.exists() and other_api.objects("secrets", "web") == []


def test_one_secret_holds_one_certificate(personas, acme_cluster):
    issue(personas.acme, ["www.acme.orgdns.test"], [(acme_cluster, "web", "www-tls")])
    with pytest.raises(ValidationError, match="already holds certificate www.acme.orgdns.test"):
        certificates.issue_certificate(personas.acme, ["api.acme.orgdns.test"], [(acme_cluster, "web", "www-tls")])
    assert Certificate.objects.count() == 1


@pytest.mark.integration
def test_one_job_at_a_time_per_certificate(personas):
    certificate, _ = issue(personas.acme, ["www.acme.orgdns.test"])
    certificates.renew_certificate(certificate)
    for action in (certificates.renew_certificate, certificates.delete_certificate):
        with pytest.raises(ValidationError, match="is renewing"):
            action(certificate)
    assert Operation.objects.filter(kind="renew_certificate").count() == 1


def test_delete_removes_the_secrets_and_the_vault_material(personas, acme_cluster, cluster_api, vault, client):
    certificate, _ = issue(personas.acme, ["www.acme.orgdns.test"], [(acme_cluster, "web", "www-tls")])
    assert installed_secret(cluster_api, "web", "www-tls")

    operation = certificates.delete_certificate(certificate, personas.alice)
    run_jobs()
    operation.refresh_from_db()
    certificate.refresh_from_db()

    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert cluster_api.objects("secrets", "web") == []
    assert certificate.state == Certificate.State.DELETED and certificate.deleted_at
    assert not certificate.installations.exists()
    prefix = vault_root()
    assert not [p for p in vault_tree(vault, prefix) if "/tls/certs/" in p]
    assert f"{prefix}/orgs/acme/tls/ca" in vault_tree(vault, prefix)  # the CA still signs the other certificates
    client.force_login(personas.alice)
    assert client.get(reverse("certificate-pem", args=["acme", certificate.pk])).status_code == 404
    assert certificate.pk not in [
        c.pk for c in client.get(reverse("certificates", args=["acme"])).context["certificates"]
    ]


def test_no_private_key_in_the_database_pages_or_job_records(personas, acme_cluster, cluster_api, client):
    certificate, _ = issue(personas.acme, ["www.acme.orgdns.test"], [(acme_cluster, "web", "www-tls")])
    certificates.renew_certificate(certificate)
    run_jobs()
    key_pem = base64.b64decode(installed_secret(cluster_api, "web", "www-tls")["data"]["tls.key"]).decode()
    key_body = "".join(key_pem.strip().splitlines()[1:-1])
    assert key_body

    dump = command_output("dumpdata", "provisioning")
    assert certificate.serial in dump
    client.force_login(personas.alice)
    pages = [
        client.get(reverse(name, args=args)).content.decode()
        for name, args in [
            ("certificates", ["acme"]),
            ("certificate", ["acme", certificate.pk]),
            ("certificate-summary", ["acme", certificate.pk]),
            ("certificate-pem", ["acme", certificate.pk]),
            ("certificate-ca", ["acme"]),
        ]
    ]
    pages += [client.get(reverse("operation", args=[op.pk])).content.decode() for op in certificate.operations.all()]
    for text in [dump, *pages]:
        assert "PRIVATE KEY" not in text and key_body[:40] not in text


def test_the_command_renews_what_is_past_two_thirds_of_its_lifetime(instant, personas, acme_cluster, cluster_api):
    now = instant.at
    with instant.travel(now - datetime.timedelta(days=61)):  # 90 days: renewed after 60
        due, _ = issue(personas.acme, ["due.acme.orgdns.test"], [(acme_cluster, "web", "due-tls")])

    def row(name, state, age_days, lifetime_days=90):
        return Certificate.objects.create(
            organization=personas.acme,
            dns_names=[f"{name}.acme.orgdns.test"],
            state=state,
            serial=name.upper(),
            not_before=now - datetime.timedelta(days=age_days),
            not_after=now - datetime.timedelta(days=age_days) + datetime.timedelta(days=lifetime_days),
        )

    fresh = row("fresh", Certificate.State.ACTIVE, 59)
    busy = row("busy", Certificate.State.INSTALLING, 80)
    expired = row("expired", Certificate.State.ACTIVE, 100)
    twin = row("twin", Certificate.State.ACTIVE, 100)  # expires in the same second as `expired`
    for state in (Certificate.State.DELETED, Certificate.State.DELETING, Certificate.State.ERROR):
        row(state, state, 80)
    old_serial = Certificate.objects.get(pk=due.pk).serial

    with instant.travel():
        planned = json.loads(call(["--dry-run", "--json"]))
        dry_run = call(["--dry-run"])
    assert [c["id"] for c in planned["certificates"]] == [expired.pk, twin.pk, busy.pk, due.pk]  # soonest expiry first
    assert {c["action"] for c in planned["certificates"]} == {"would renew"} and planned["dry_run"]
    assert not Operation.objects.filter(kind="renew_certificate").exists()
    assert "4 certificates due for renewal (dry run" in dry_run

    with instant.travel():
        done = json.loads(call(["--json"]))
    actions = [(c["id"], c["action"]) for c in done["certificates"]]
    assert actions == [(expired.pk, "renewing"), (twin.pk, "renewing"), (busy.pk, "skipped"), (due.pk, "renewing")]
    assert (done["renewing"], done["skipped"]) == (3, 1)
    assert "is installing" in done["certificates"][2]["reason"]
    assert fresh.pk not in dict(actions)
    queued = AuditEvent.objects.filter(action="renew_certificate.queued")
    assert sorted(queued.values_list("object_id", flat=True)) == sorted([str(expired.pk), str(twin.pk), str(due.pk)])
    assert set(queued.values_list("source", flat=True)) == {"cron"}

    with instant.travel():
        run_jobs()
        again = json.loads(call(["--dry-run", "--json"]))
    due.refresh_from_db()
    assert due.serial != old_serial and due.not_after > now + datetime.timedelta(days=89)
    assert format(served_certificate(cluster_api, "web", "due-tls").serial_number, "X") == due.serial
    assert again["due"] == 1  # the busy one, still waiting for its job


def call(args):
    return command_output("renew_certificates", *args)


def command_output(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def acme_certificate(personas, acme_cluster):
    certificate, _ = issue(personas.acme, ["www.acme.orgdns.test"], [(acme_cluster, "web", "www-tls")])
    return certificate


def read_urls(certificate):
    return [
        reverse("certificates", args=["acme"]),
        reverse("certificate", args=["acme", certificate.pk]),
        reverse("certificate-summary", args=["acme", certificate.pk]),
        reverse("certificate-pem", args=["acme", certificate.pk]),
        reverse("certificate-ca", args=["acme"]),
    ]


def action_urls(certificate):
    return [
        reverse("certificate-issue", args=["acme"]),
        reverse("certificate-install", args=["acme", certificate.pk]),
        reverse("certificate-renew", args=["acme", certificate.pk]),
        reverse("certificate-delete", args=["acme", certificate.pk]),
    ]


def test_members_see_certificates_and_download_public_parts(client, personas, acme_certificate):
    for user in (personas.alice, personas.vera, personas.sam):
        client.force_login(user)
        for url in read_urls(acme_certificate):
            assert client.get(url).status_code in (200, 286), (user, url)
    page = client.get(reverse("certificate", args=["acme", acme_certificate.pk])).content.decode()
    assert acme_certificate.serial in page and acme_certificate.fingerprint_sha256 in page
    assert "prod" in page and "www-tls" in page and "state-installed" in page
    download = client.get(reverse("certificate-pem", args=["acme", acme_certificate.pk]))
    assert download["Content-Disposition"].startswith("attachment")
    assert format(x509.load_pem_x509_certificate(download.content).serial_number, "X") == acme_certificate.serial
    ca = x509.load_pem_x509_certificate(client.get(reverse("certificate-ca", args=["acme"])).content)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_other_organizations_users_cannot_see_download_renew_or_install(
    client, personas, acme_certificate, make_cluster_api
):
    globex_cluster = register(personas.globex, "prod", make_cluster_api())
    for user in (personas.bob, personas.charlie):
        client.force_login(user)
        for url in read_urls(acme_certificate) + action_urls(acme_certificate)[:2]:
            assert client.get(url).status_code == 404, (user, url)
        for url in action_urls(acme_certificate):
            assert (
                client.post(url, {"cluster": globex_cluster.pk, "namespace": "x", "secret_name": "x"}).status_code
                == 404
            )
    # globex's name with acme's certificate id is not found either
    client.force_login(personas.bob)
    assert client.get(reverse("certificate", args=["globex", acme_certificate.pk])).status_code == 404
    assert client.post(reverse("certificate-renew", args=["globex", acme_certificate.pk])).status_code == 404
    assert Operation.objects.filter(certificate=acme_certificate).count() == 1
    assert acme_certificate.installations.count() == 1


def test_viewers_cannot_act(client, personas, acme_certificate):
    client.force_login(personas.vera)
    for url in action_urls(acme_certificate):
        assert client.post(url, {"dns_names": "x.acme.orgdns.test"}).status_code == 403, url
    assert client.get(reverse("certificate-issue", args=["acme"])).status_code == 403
    page = client.get(reverse("certificate", args=["acme", acme_certificate.pk])).content.decode()
    assert "Renew now" not in page and "Delete" not in page
    assert Certificate.objects.count() == 1 and Operation.objects.filter(certificate=acme_certificate).count() == 1


def test_issuing_through_the_form(client, personas, acme_cluster, cluster_api):
    client.force_login(personas.alice)
    url = reverse("certificate-issue", args=["acme"])
    refused = client.post(url, {"dns_names": "www.acme.orgdns.test\nwww.globex.orgdns.test", "namespace": "default"})
    assert refused.status_code == 200 and "www.globex.orgdns.test is outside your zone" in refused.content.decode()
    no_secret = client.post(
        url, {"dns_names": "www.acme.orgdns.test", "clusters": [acme_cluster.pk], "namespace": "web"}
    )
    assert "Give the namespace and Secret name" in no_secret.content.decode()
    assert not Certificate.objects.exists()

    response = client.post(
        url,
        {
            "dns_names": "www.acme.orgdns.test, api.acme.orgdns.test",
            "clusters": [acme_cluster.pk],
            "namespace": "web",
            "secret_name": "web-tls",
        },
    )
    certificate = Certificate.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("certificate", args=["acme", certificate.pk])
    assert (
        certificate.dns_names == ["www.acme.orgdns.test", "api.acme.orgdns.test"]
        and certificate.created_by == personas.alice
    )
    busy_page = client.get(response["Location"]).content.decode()
    assert 'hx-get="' + reverse("certificate-summary", args=["acme", certificate.pk]) in busy_page
    run_jobs()
    summary = client.get(reverse("certificate-summary", args=["acme", certificate.pk]))
    assert summary.status_code == 286 and "state-installed" in summary.content.decode()
    assert installed_secret(cluster_api, "web", "web-tls")


def test_the_install_form_offers_only_the_organizations_live_clusters(
    client, personas, acme_certificate, make_cluster_api
):
    globex_cluster = register(personas.globex, "prod", make_cluster_api())
    client.force_login(personas.alice)
    url = reverse("certificate-install", args=["acme", acme_certificate.pk])
    form = client.get(url).context["form"]
    assert list(form.fields["cluster"].queryset) == list(Cluster.objects.filter(organization=personas.acme))
    response = client.post(url, {"cluster": globex_cluster.pk, "namespace": "web", "secret_name": "x-tls"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert acme_certificate.installations.count() == 1


def test_expiring_certificates_stand_out_in_the_list(client, personas, acme_certificate):
    now = timezone.now()
    Certificate.objects.filter(pk=acme_certificate.pk).update(
        not_before=now - datetime.timedelta(days=70), not_after=now + datetime.timedelta(days=20)
    )
    client.force_login(personas.alice)
    page = client.get(reverse("certificates", args=["acme"])).content.decode()
    assert 'class="attention"' in page and "state-expiring" in page
