"""An organization's certificate authority and the server certificates it signs, and the Secret that carries them."""

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Clocks of the machines that check a certificate may run a little behind ours.
BACKDATE = datetime.timedelta(minutes=5)
CERTIFICATE_LABEL = "orgdns.io/certificate"
MANAGED_BY = {"app.kubernetes.io/managed-by": "orgdns"}
X509_COMMON_NAME_MAX = 64
# An organization CA signs for names in its zone only, never for an IP address (an IP SAN is not a DNS name, so the
# permitted DNS subtree alone does not stop it).
EXCLUDED_ADDRESSES = [x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")), x509.IPAddress(ipaddress.ip_network("::/0"))]


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM (PKCS#8, unencrypted) private key."""

    certificate: str
    private_key: str


@dataclass(frozen=True)
class CertificateInfo:
    serial: str
    fingerprint_sha256: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    dns_names: list[str]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_usage(**enabled: bool) -> x509.KeyUsage:
    flags = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ]
    return x509.KeyUsage(**{flag: enabled.get(flag, False) for flag in flags})


def _pem(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> KeyPair:
    return KeyPair(
        certificate=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def make_ca(zone_name: str, organization: str, days: int, now: datetime.datetime | None = None) -> KeyPair:
    """A self-signed EC P-256 CA that can sign server certificates for names in zone_name only."""
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} orgdns CA"[:X509_COMMON_NAME_MAX]),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(
            x509.NameConstraints(permitted_subtrees=[x509.DNSName(zone_name)], excluded_subtrees=EXCLUDED_ADDRESSES),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem(certificate, key)


def issue_server_certificate(
    ca: KeyPair, dns_names: list[str], organization: str, days: int, now: datetime.datetime | None = None
) -> KeyPair:
    """A server certificate for dns_names with a new EC P-256 key, signed by ca (a KeyPair); never outlives the CA."""
    now = now or _now()
    ca_certificate = x509.load_pem_x509_certificate(ca.certificate.encode())
    # make_ca's keys are EC; any key a CA may sign with would do.
    ca_key = cast(
        CertificateIssuerPrivateKeyTypes, serialization.load_pem_private_key(ca.private_key.encode(), password=None)
    )
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)]
    if len(dns_names[0]) <= X509_COMMON_NAME_MAX:
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0]))
    ca_key_id = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _pem(certificate, key)


def excludes_ip_addresses(ca_certificate_pem: str) -> bool:
    """Whether a CA's name constraints exclude every IPv4 and IPv6 address (CAs made before they did, do not)."""
    certificate = x509.load_pem_x509_certificate(ca_certificate_pem.encode())
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return False
    return all(excluded in (constraints.excluded_subtrees or []) for excluded in EXCLUDED_ADDRESSES)


def describe(certificate_pem: str) -> CertificateInfo:
    """What a page may show about a certificate: its public facts."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = names.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns_names = []
    return CertificateInfo(
        serial=format(certificate.serial_number, "X"),
        fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        dns_names=dns_names,
    )


def secret_manifest(
    name: str,
    namespace: str,
    certificate_id: str,
    labels: dict[str, str],
    certificate_pem: str,
    private_key_pem: str,
    ca_pem: str,
) -> dict[str, Any]:
    """A kubernetes.io/tls Secret labelled with the certificate it holds, so we never touch a Secret that is not ours."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**MANAGED_BY, **labels, CERTIFICATE_LABEL: certificate_id},
        },
        "stringData": {"tls.crt": certificate_pem, "tls.key": private_key_pem, "ca.crt": ca_pem},
    }


def holds_certificate(secret: dict[str, Any], certificate_id: str) -> bool:
    return (secret["metadata"].get("labels") or {}).get(CERTIFICATE_LABEL) == certificate_id
