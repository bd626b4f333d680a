"""The registration probe: short timeouts, one message for every network failure, a budget per user, and no
connections to loopback, link-local or metadata addresses unless a setting allows them."""

import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from django.urls import reverse

from provisioning.clients.kube import ClusterConnection
from provisioning.models import AuditEvent, Cluster, Operation
from provisioning.services.clusters import actions as clusters
from tests.conftest import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)

PROBE_FAILED = "Cannot use this cluster: no Kubernetes API server answered at {} with this CA"


def refusal(org, connection, user=None):
    with pytest.raises(ValidationError) as caught:
        clusters.register_cluster(org, "edge", connection, user)
    return caught.value.messages[0]


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-kubernetes")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pem.decode()


@pytest.fixture
def https_server(tmp_path):
    """An HTTPS server on loopback answering every GET with the body (and status) it is given — but for a kube-system
    namespace — and every POST (a SelfSubjectAccessReview) with "allowed"."""
    ca_pem = self_signed(tmp_path)
    answer = {"status": 200, "body": b"<html>hello</html>"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/api/v1/namespaces/kube-system":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"metadata": {"uid": "6f1c0d6e-0000-4000-8000-000000000001"}}')
                return
            self.send_response(answer["status"])
            self.end_headers()
            self.wfile.write(answer["body"])

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(201)
            self.end_headers()
            self.wfile.write(b'{"status": {"allowed": true}}')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.connection = ClusterConnection(f"https://127.0.0.1:{server.server_port}", "token", ca_pem)
    server.answer = answer
    yield server
    server.shutdown()


@pytest.fixture
def silent_port():
    """A port that accepts connections and never says anything."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_every_network_failure_gets_the_same_message_quickly(personas, cluster_api, silent_port, settings):
    settings.ORGDNS_PROBE_TIMEOUT = 1
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    failures = {
        "connection refused": f"https://127.0.0.1:{closed_port}",
        "no answer": f"https://127.0.0.1:{silent_port}",
        "name does not resolve": "https://no-such-cluster.invalid:6443",
    }
    for what, server in failures.items():
        started = time.monotonic()
        message = refusal(personas.acme, ClusterConnection(server, "token"))
        assert message.startswith(PROBE_FAILED.format(server)), (what, message)
        assert time.monotonic() - started < 3, what
    # A certificate that does not match the CA (here: no CA given) is told the same way.
    message = refusal(personas.acme, ClusterConnection(cluster_api.url, cluster_api.token))
    assert message.startswith(PROBE_FAILED.format(cluster_api.url))
    assert not Cluster.objects.exists()


@pytest.mark.integration
@pytest.mark.parametrize(
    "status,body",
    [(200, b"<html>hello</html>"), (200, b"{}"), (200, b"[1, 2]"), (404, b"not found")],
    ids=["html", "json-without-version", "json-list", "not-found"],
)
def test_a_server_that_is_not_kubernetes_is_refused_with_a_form_error(status, body, personas, https_server, client):
    https_server.answer.update(status=status, body=body)
    client.force_login(personas.alice)
    connection = https_server.connection
    response = client.post(
        reverse("cluster-register", args=["acme"]),
        {"name": "edge", "api_server": connection.server, "token": "t", "ca_pem": connection.ca_pem},
    )
    assert response.status_code == 200
    assert (
        "is not a Kubernetes API server" in response.content.decode()
        or "like a Kubernetes API server" in response.content.decode()
    )
    assert not Cluster.objects.exists()


def test_each_user_has_a_budget_of_probes(personas, make_cluster_api, settings):
    settings.ORGDNS_PROBE_BURST = 2
    settings.ORGDNS_PROBES_PER_MINUTE = 1
    api = make_cluster_api()
    wrong = ClusterConnection(api.url, "wrong-token", api.ca_pem)
    for _ in range(2):
        assert "refused our token" in refusal(personas.acme, wrong, personas.alice)
    assert "Too many cluster registrations in a short time: try again in" in refusal(
        personas.acme, api.connection, personas.alice
    )
    assert not Cluster.objects.exists()
    # Another user's budget is their own.
    cluster, _ = clusters.register_cluster(personas.globex, "edge", api.connection, personas.bob)
    refused = AuditEvent.objects.filter(action="register.refused", actor=personas.alice).order_by("-id").first()
    assert refused.outcome == AuditEvent.Outcome.REFUSED and "Too many cluster registrations" in refused.detail


@pytest.mark.integration
@pytest.mark.parametrize(
    "server,kind",
    [
        ("https://169.254.169.254", "cloud metadata"),
        ("https://[fd00:ec2::254]", "cloud metadata"),
        ("https://169.254.10.1:6443", "link-local"),
        ("https://[fe80::1]:6443", "link-local"),
        ("https://0.0.0.0:6443", "unspecified"),
        ("https://[::ffff:127.0.0.1]:6443", "loopback"),
        ("https://localhost:6443", "loopback"),
    ],
)
def test_loopback_link_local_and_metadata_addresses_are_refused(server, kind, personas, settings):
    settings.ORGDNS_CLUSTER_PERMITTED_NETWORKS = []
    message = refusal(personas.acme, ClusterConnection(server, "token"))
    assert f"is {kind}: orgdns does not connect to loopback, link-local or cloud metadata addresses" in message
    assert not Cluster.objects.exists()


def test_the_permitted_networks_setting_allows_loopback_and_jobs_follow_it(personas, cluster_api, settings):
    settings.ORGDNS_CLUSTER_PERMITTED_NETWORKS = []
    assert "the API server address 127.0.0.1 is loopback" in refusal(personas.acme, cluster_api.connection)

    settings.ORGDNS_CLUSTER_PERMITTED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    by_name = ClusterConnection(
        cluster_api.url.replace("127.0.0.1", "localhost"), cluster_api.token, cluster_api.ca_pem
    )
    cluster, operation = clusters.register_cluster(personas.acme, "edge", by_name)  # checked against the name localhost
    settings.ORGDNS_CLUSTER_PERMITTED_NETWORKS = []  # a job connects under the same rule as the probe
    run_jobs()
    operation.refresh_from_db()
    assert operation.state == Operation.State.FAILED and "localhost (127.0.0.1) is loopback" in operation.error
    assert cluster_api.objects("deployments") == []


@pytest.mark.integration
def test_a_name_is_checked_against_the_certificate_though_its_address_is_what_is_connected_to(personas, https_server):
    https_server.answer.update(body=b'{"gitVersion": "v1.32.0"}')
    by_address = https_server.connection
    clusters.register_cluster(personas.acme, "first", by_address)  # the certificate names 127.0.0.1 only
    by_name = ClusterConnection(by_address.server.replace("127.0.0.1", "localhost"), "t", by_address.ca_pem)
    assert refusal(personas.acme, by_name).startswith(PROBE_FAILED.format(by_name.server))
