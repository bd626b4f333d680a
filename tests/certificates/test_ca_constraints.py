"""Organization CAs vouch for DNS names in their zone only, never for an IP address; older CAs are reissued."""

import base64
import datetime
import io
import ipaddress
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.management import call_command

from provisioning.clients import tls
from provisioning.models import AuditEvent, Certificate, Operation
from provisioning.services.backends import vault_root
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import actions as clusters
from tests.conftest import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def leaf(ca, *names):
    """A server certificate for these DNS names and IP addresses, signed with the CA's own key: what someone holding
    the key could make."""
    ca_certificate = x509.load_pem_x509_certificate(ca.certificate.encode())
    ca_key = serialization.load_pem_private_key(ca.private_key.encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    alternative_names = []
    for name in names:
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative_names.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme")]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def openssl_verify(ca_pem, certificate_pem, directory):
    (directory / "ca.crt").write_text(ca_pem)
    (directory / "leaf.crt").write_text(certificate_pem)
    return subprocess.run(
        ["openssl", "verify", "-CAfile", "ca.crt", "leaf.crt"], cwd=directory, capture_output=True, text=True
    )


def ca_without_ip_exclusion(zone_name, organization):
    """An organization CA as orgdns made them before: a permitted DNS subtree and nothing excluded."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} orgdns CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.NameConstraints(permitted_subtrees=[x509.DNSName(zone_name)], excluded_subtrees=None), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return tls.KeyPair(
        certificate=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def stored_ca(vault, org="acme"):
    data = vault.secrets.kv.v2.read_secret_version(
        path=f"{vault_root()}/orgs/{org}/tls/ca", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    return tls.KeyPair(**data)


def test_a_certificate_for_an_ip_address_signed_with_the_org_key_does_not_verify(personas, vault, tmp_path):
    certificates.issue_certificate(personas.acme, ["www.acme.orgdns.test"])
    run_jobs()
    ca = stored_ca(vault)
    assert tls.excludes_ip_addresses(ca.certificate)

    in_zone = openssl_verify(ca.certificate, leaf(ca, "api.acme.orgdns.test"), tmp_path)
    assert in_zone.returncode == 0, in_zone.stderr  # the key signs, and OpenSSL accepts names in the zone
    for names in [
        ("10.0.0.1",),
        ("api.acme.orgdns.test", "192.0.2.10"),
        ("2001:db8::1",),
        ("www.acme.orgdns.test", "::1"),
    ]:
        refused = openssl_verify(ca.certificate, leaf(ca, *names), tmp_path)
        assert refused.returncode != 0 and "excluded subtree violation" in refused.stderr, (names, refused.stderr)


def test_without_the_exclusion_an_ip_address_would_verify(tmp_path):
    """Why the exclusion is there: a permitted DNS subtree says nothing about IP addresses."""
    old = ca_without_ip_exclusion("acme.orgdns.test", "acme")
    assert not tls.excludes_ip_addresses(old.certificate)
    assert openssl_verify(old.certificate, leaf(old, "10.0.0.1"), tmp_path).returncode == 0


def test_reissue_cas_replaces_old_cas_and_renews_their_certificates(personas, cluster_api, vault):
    cluster_api.allow_certificates("web")
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    old = ca_without_ip_exclusion("acme.orgdns.test", "acme")
    vault.secrets.kv.v2.create_or_update_secret(
        path=f"{vault_root()}/orgs/acme/tls/ca",
        secret={"certificate": old.certificate, "private_key": old.private_key},
        mount_point="secret",
    )
    certificate, _ = certificates.issue_certificate(
        personas.acme, ["www.acme.orgdns.test"], [(cluster, "web", "www-tls")]
    )
    certificates.issue_certificate(personas.globex, ["www.globex.orgdns.test"])  # globex's CA is a new one
    run_jobs()
    certificate.refresh_from_db()
    old_serial = certificate.serial

    output = io.StringIO()
    call_command("reissue_cas", "--dry-run", stdout=output)
    assert "would reissue  acme  (1 certificates)" in output.getvalue() and "globex" not in output.getvalue()
    assert stored_ca(vault).certificate == old.certificate

    output = io.StringIO()
    call_command("reissue_cas", stdout=output)
    assert "reissued  acme: 1 certificates renewing" in output.getvalue()
    run_jobs()

    new = stored_ca(vault)
    assert new.certificate != old.certificate and tls.excludes_ip_addresses(new.certificate)
    certificate.refresh_from_db()
    assert certificate.state == Certificate.State.ACTIVE and certificate.serial != old_serial
    secret = {k: base64.b64decode(v).decode() for k, v in cluster_api.objects("secrets", "web")[0]["data"].items()}
    assert secret["ca.crt"] == new.certificate
    installed = x509.load_pem_x509_certificate(secret["tls.crt"].encode())
    installed.verify_directly_issued_by(x509.load_pem_x509_certificate(new.certificate.encode()))
    assert Operation.objects.filter(kind="renew_certificate", state=Operation.State.SUCCEEDED).count() == 1
    assert AuditEvent.objects.filter(action="ca.reissue", organization=personas.acme, source="cron").exists()

    output = io.StringIO()
    call_command("reissue_cas", stdout=output)
    assert output.getvalue().strip() == "0 organizations got a new CA."
