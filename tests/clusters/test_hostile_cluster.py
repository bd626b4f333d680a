"""A cluster API that attacks its reader (tests/hostile_api.py): an endless answer, a one-byte drip, JSON nested past
reason, a redirect. Registering it through the form answers within the probe's deadline with a clear error; the web
process (a real `manage.py runserver`) grows by less than 50 MB; the health check every tenant shares is bounded the
same way. Request bodies past the limit are refused before they are read."""

import http.cookiejar
import ipaddress
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from devstack.processes import free_port, port_open, stop
from provisioning.clients.errors import ProviderError
from provisioning.clients.kube import ClusterConnection, KubeCluster
from provisioning.clients.retry import RetryPolicy
from provisioning.models import Cluster
from provisioning.services.backends import Backends
from provisioning.services.clusters import externaldns_health
from provisioning.services.credentials.vault_paths import cluster_secret_path
from provisioning.services.people import api_tokens
from tests.conftest import manage_command, manage_env, wait_until
from tests.hostile_api import ATTACKS, HostileApi

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = 2  # ORGDNS_PROBE_TIMEOUT of these tests, seconds
SLACK = 1.5  # for the page to be rendered and the machine to be busy
TOO_LARGE = "with more than 1048576 bytes (ORGDNS_CLUSTER_MAX_RESPONSE_BYTES)"
TOO_DEEP = "nested more than 100 levels deep"
PROBE_FAILED = "no Kubernetes API server answered at {} with this CA (unreachable from orgdns, too slow"
MEMORY_GROWTH_LIMIT = 50 * 1024 * 1024

# attack -> what the form says
TOLD = {
    "endless body": TOO_LARGE,
    "endless JSON string": TOO_LARGE,
    "huge Content-Length": TOO_LARGE,
    "one-byte drip": PROBE_FAILED,
    "dripped headers": PROBE_FAILED,
    "deep nesting": TOO_DEEP,
    "nesting past the limit": TOO_DEEP,
    "redirect": PROBE_FAILED,
    "a list for an object": "with an access review: it does not answer like a Kubernetes API server",
}


@pytest.fixture
def hostile_api(tmp_path):
    api = HostileApi(tmp_path)
    yield api
    api.stop()


def report(**figures):
    """Figures for bench/hostile_cluster.py, which runs these tests and prints them."""
    if path := os.environ.get("ORGDNS_HOSTILE_REPORT"):
        with open(path, "a") as file:
            file.write(json.dumps(figures) + "\n")


@pytest.mark.integration
@pytest.mark.parametrize("attack", ATTACKS)
def test_registering_a_hostile_api_through_the_form_answers_within_the_deadline(
    attack, personas, hostile_api, client, settings
):
    settings.ORGDNS_PROBE_TIMEOUT = DEADLINE
    hostile_api.serve(attack)
    client.force_login(personas.alice)
    started = time.monotonic()
    response = client.post(
        reverse("cluster-register", args=["acme"]),
        {"name": "edge", "api_server": hostile_api.url, "token": "t", "ca_pem": hostile_api.ca_pem},
    )
    took = time.monotonic() - started
    assert response.status_code == 200
    assert TOLD[attack].format(hostile_api.url) in response.content.decode()
    assert took < DEADLINE + SLACK, took
    assert not Cluster.objects.exists()
    assert hostile_api.target_accepted == 0  # the redirect was not followed


@pytest.mark.integration
def test_the_health_check_of_a_hostile_cluster_is_bounded_and_says_why(personas, hostile_api, settings):
    settings.KUBE_REQUEST_TIMEOUT = DEADLINE
    cluster = Cluster.objects.create(
        organization=personas.acme,
        name="edge",
        api_server=hostile_api.url,
        owner_id="acme-edge-0001",
        kube_system_uid="6f1c0d6e-0000-4000-8000-00000000beef",
        state=Cluster.State.READY,
    )
    vault = Backends().vault()
    vault.write(
        cluster_secret_path(vault, cluster), ClusterConnection(hostile_api.url, "t", hostile_api.ca_pem).as_secret()
    )
    for attack, told in [
        ("endless body", TOO_LARGE),
        ("one-byte drip", f"did not answer GET /apis/apps/v1/namespaces/{settings.EXTERNALDNS_NAMESPACE}/deployments"),
        ("dripped headers", f"within {DEADLINE} s"),
        ("deep nesting", TOO_DEEP),
    ]:
        hostile_api.serve(attack)
        started = time.monotonic()
        health = externaldns_health.check(cluster)
        assert time.monotonic() - started < DEADLINE + SLACK, attack
        cluster.refresh_from_db()
        assert health == Cluster.Health.UNKNOWN, attack
        assert cluster.externaldns_problem.startswith("cannot check: ") and told in cluster.externaldns_problem, attack


@pytest.mark.integration
def test_a_connection_kept_from_an_earlier_call_is_bounded_by_the_next_calls_deadline(hostile_api):
    kube = KubeCluster(
        ClusterConnection(hostile_api.url, "t", hostile_api.ca_pem),
        retry=RetryPolicy(attempts=1),
        timeout=DEADLINE,
        permitted_networks=[ipaddress.ip_network("127.0.0.0/8")],
    )
    hostile_api.serve("nesting past the limit")  # a whole answer: the connection is kept for the next call
    with pytest.raises(ProviderError, match=TOO_DEEP):
        kube.version()
    hostile_api.serve("one-byte drip")
    started = time.monotonic()
    with pytest.raises(ProviderError, match=f"did not answer GET /version within {DEADLINE} s") as caught:
        kube.version()
    assert time.monotonic() - started < DEADLINE + SLACK
    assert (caught.value.permanent, caught.value.code) == (False, "timed-out")
    assert hostile_api.connections == 1


class WebProcess:
    """`manage.py runserver` in a process of its own (as the demo runs it), signed in as a user."""

    def __init__(self, tmp_path, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp_path / "web.log", "w")  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(
            manage_command("runserver", f"127.0.0.1:{self.port}", "--noreload", "--insecure"),
            env=manage_env(**env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=60)
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def rss(self):
        """The process's resident memory, bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) * 1024

    def csrf_token(self, path):
        page = self.opener.open(self.url + path).read().decode()
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]

    def post(self, path, fields):
        fields = {"csrfmiddlewaretoken": self.csrf_token(path), **fields}
        data = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Referer": self.url + path})
        return self.opener.open(request, timeout=60).read().decode()

    def sign_in(self, username, password):
        self.post("/login/", {"username": username, "password": password})

    def stop(self):
        stop(self.process)
        self.log.close()


@pytest.fixture
def web_process(tmp_path):
    web = WebProcess(tmp_path, ORGDNS_PROBE_TIMEOUT=str(DEADLINE), ORGDNS_PROBE_BURST="100")
    yield web
    web.stop()


@pytest.mark.integration
def test_the_web_process_memory_stays_bounded_against_a_hostile_api(personas, hostile_api, web_process):
    web_process.sign_in("alice", "pw-alice")
    path = reverse("cluster-register", args=["acme"])

    def register(attack):
        hostile_api.serve(attack)
        started = time.monotonic()
        page = web_process.post(
            path, {"name": "edge", "api_server": hostile_api.url, "token": "t", "ca_pem": hostile_api.ca_pem}
        )
        return page, time.monotonic() - started

    register("nesting past the limit")  # the first registration loads what registering needs
    before = web_process.rss()
    for attack in ("endless body", "huge Content-Length", "one-byte drip", "dripped headers", "deep nesting"):
        for _ in range(3):
            page, took = register(attack)
            assert TOLD[attack].format(hostile_api.url) in page, attack
            assert took < DEADLINE + SLACK, (attack, took)
        grown = web_process.rss() - before
        report(attack=attack, seconds=round(took, 2), rss_growth_mb=round(grown / 2**20, 1), sent=hostile_api.sent)
        assert grown < MEMORY_GROWTH_LIMIT, (attack, grown)
    assert not Cluster.objects.exists()


def answer_to_head(port, head):
    """The answer to a request of which only the head is sent: its body never is."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < int(
            re.search(rb"Content-Length: (\d+)", answer)[1]
        ):
            answer += connection.recv(65536)
    return answer.decode()


@pytest.mark.integration
def test_a_request_body_past_the_limit_is_refused_before_it_is_read(personas, web_process):
    """413 comes back while not one byte of the (claimed) 50 MB body has been sent."""
    path = reverse("cluster-register", args=["acme"])
    answer = answer_to_head(
        web_process.port,
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {50 * 2**20}\r\n\r\n",
    )
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert f"The request body is {50 * 2**20} bytes; orgdns accepts at most {2**20}." in answer
    answer = answer_to_head(
        web_process.port,
        "POST /api/v1/organizations/acme/clusters HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {2**20 + 1}\r\n\r\n",
    )
    assert answer.startswith("HTTP/1.1 413") and "application/problem+json" in answer, answer[:300]
    assert json.loads(answer.split("\r\n\r\n", 1)[1])["status"] == 413


def test_a_kubeconfig_past_256_kib_is_refused_naming_the_limit(personas, client):
    client.force_login(personas.alice)
    kubeconfig = SimpleUploadedFile("kubeconfig.yaml", b"# padding\n" * (256 * 1024 // 10 + 1))
    response = client.post(reverse("cluster-register", args=["acme"]), {"name": "edge", "kubeconfig": kubeconfig})
    assert "The kubeconfig is larger than 256 KiB." in response.content.decode()
    assert not Cluster.objects.exists()


KUBECONFIG_WITH_A_NEWLINE_IN_THE_TOKEN = yaml.safe_dump(
    {
        "current-context": "main",
        "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://k8s.example:6443"}}],
        "users": [{"name": "u", "user": {"token": "abc\n"}}],
    }
)


@pytest.mark.integration
def test_a_token_with_a_trailing_newline_is_a_clear_error_in_the_form_and_the_api(personas, client):
    client.force_login(personas.alice)
    kubeconfig = SimpleUploadedFile("kubeconfig.yaml", KUBECONFIG_WITH_A_NEWLINE_IN_THE_TOKEN.encode())
    response = client.post(reverse("cluster-register", args=["acme"]), {"name": "edge", "kubeconfig": kubeconfig})
    assert response.status_code == 200
    assert "the bearer token must be printable ASCII without spaces" in response.content.decode()

    _, raw = api_tokens.create_token(personas.alice, "ci", 1)
    response = client.post(
        "/api/v1/organizations/acme/clusters",
        {"name": "edge", "kubeconfig": KUBECONFIG_WITH_A_NEWLINE_IN_THE_TOKEN},
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 422, response.content
    assert "the bearer token must be printable ASCII without spaces" in response.json()["detail"]
    assert not Cluster.objects.exists()
