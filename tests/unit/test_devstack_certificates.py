"""The local clusters' certificates (devstack/cluster.py) pass the strict X.509 checks Python 3.13 makes by default
(ssl.VERIFY_X509_STRICT; urllib3 >= 2.3, the kubernetes client): a TLS handshake against them, strict on every Python."""

import socket
import ssl
import threading

import pytest
from cryptography import x509

from devstack.cluster import LocalCluster


@pytest.fixture
def pki(tmp_path):
    cluster = LocalCluster("strict", etcd=None, workdir=tmp_path)
    cluster._write_pki()
    return cluster


def handshake(cluster, server_hostname):
    """A TLS handshake with a server presenting the API server's certificate, verified strictly against the CA."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cluster.dir / "apiserver.crt", cluster.dir / "apiserver.key")
    client_context = ssl.create_default_context(cadata=cluster.ca_pem)
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT
    listener = socket.create_server(("127.0.0.1", 0))
    errors = []

    def serve():
        connection, _ = listener.accept()
        try:
            with server_context.wrap_socket(connection, server_side=True):
                pass
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname(), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            return tls.getpeercert()
    finally:
        thread.join(10)
        listener.close()


def test_the_api_server_certificate_passes_strict_verification(pki):
    assert handshake(pki, "localhost")["subject"] == ((("commonName", "kube-apiserver"),),)
    assert handshake(pki, "127.0.0.1")


def test_the_ca_and_the_server_certificate_carry_key_identifiers_and_constraints(pki):
    ca = x509.load_pem_x509_certificate(pki.ca_pem.encode())
    server = x509.load_pem_x509_certificates((pki.dir / "apiserver.crt").read_bytes())[0]
    ca_key_id = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ca.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ca_key_id
    assert server.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ca_key_id
    assert server.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_strict_verification_refuses_a_certificate_without_an_authority_key_identifier(pki):
    """What the devstack's certificates were before: the same test fails on them."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = serialization.load_pem_private_key(pki.ca_key_pem, None)
    server = x509.load_pem_x509_certificates((pki.dir / "apiserver.crt").read_bytes())[0]
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(server.subject)
        .issuer_name(server.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(server.not_valid_before_utc)
        .not_valid_after(server.not_valid_after_utc)
    )
    for extension in server.extensions:
        if not isinstance(extension.value, (x509.AuthorityKeyIdentifier, x509.SubjectKeyIdentifier)):
            builder = builder.add_extension(extension.value, extension.critical)
    without = builder.sign(ca_key, hashes.SHA256())
    (pki.dir / "apiserver.crt").write_bytes(without.public_bytes(serialization.Encoding.PEM))
    (pki.dir / "apiserver.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="Missing Authority Key Identifier"):
        handshake(pki, "localhost")
