"""orgdns's image (image/Containerfile, built from this checkout) run by podman as the Helm chart runs it: each
workload's args, environment and securityContext read from `helm template` (devstack/image.py plays the kubelet),
against the local stack. Migrations on an empty database; the web's login page with its CSS, read-only, as user 10001;
a cluster registered through the containerized web, made ready by the containerized worker, published by its
ExternalDNS; the scheduler's periodic work; SIGTERM stopping the web and the worker gracefully."""

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
import uuid

import django_rq
import psycopg
import pytest
from django.conf import settings
from rq.job import Job

from devstack.image import CONTAINERS, IMAGE, build_image, podman, podman_run_command, render, workload
from devstack.processes import free_port, wait_for_http
from provisioning.models import Cluster, HostedZone
from provisioning.services.people import api_tokens
from tests.clusters.test_externaldns import a_records
from tests.conftest import wait_until

# Building the image (the first time on a machine, or after the lock file changed) takes minutes.
pytestmark = [pytest.mark.timeout(1800), pytest.mark.integration]


@pytest.fixture(scope="session")
def image():
    """The image of this checkout (layers cached by podman: only what changed is built again)."""
    build_image()
    return IMAGE


def database_url(name):
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}"


class Deployment:
    """The chart's workloads as podman containers, rendered for this test's servers."""

    def __init__(self, stack, database, tmp_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        values = {
            "web": {"port": self.port, "processes": 1},
            "config": {
                "ORGDNS_BASE_DOMAIN": "orgdns.test",
                "ORGDNS_CLUSTER_PERMITTED_NETWORKS": "127.0.0.0/8",  # the local clusters listen on loopback
                "AWS_ENDPOINT_URL": stack.moto_url,
                "AWS_DEFAULT_REGION": "us-east-1",
                "VAULT_ADDR": stack.vault_url,
                "VAULT_PREFIX": settings.VAULT_PREFIX,
            },
        }
        self.objects = render(values, tmp_path)
        # What the operator's Secret (existingSecret) holds.
        self.secret = {
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "DATABASE_URL": database_url(database),
            "REDIS_URL": settings.REDIS_URL,
            "VAULT_TOKEN": settings.VAULT_TOKEN,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        self.tag = uuid.uuid4().hex[:8]
        self.logs = tmp_path
        self.started = {}

    def command(self, kind, name):
        template = workload(self.objects, kind, name)["spec"]["template"]
        return podman_run_command(self.objects, template, self.secret, f"orgdns-test-{name}-{self.tag}")

    def run(self, kind, name):
        """Runs the workload's container to its end: (exit code, output)."""
        done = podman(*self.command(kind, name), check=False, capture_output=True, timeout=300)
        return done.returncode, done.stdout + done.stderr

    def start(self, name):
        log = open(self.logs / f"{name}.log", "w+")
        process = subprocess.Popen(
            [str(CONTAINERS), "podman", *self.command("Deployment", name)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started[name] = (process, log)
        return process

    def output(self, name):
        process, log = self.started[name]
        log.flush()
        return (self.logs / f"{name}.log").read_text()

    def stop(self, name, timeout=60):
        """SIGTERM, as the kubelet sends (podman run passes it on to the container): its exit code."""
        process, _ = self.started[name]
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def remove_all(self):
        for name, (process, log) in self.started.items():
            if process.poll() is None:
                podman(
                    "rm", "--force", "--time", "0", f"orgdns-test-{name}-{self.tag}", check=False, capture_output=True
                )
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.close()


@pytest.fixture
def empty_database():
    name = f"orgdns_image_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url("postgres"), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(database_url("postgres"), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def get(url, **headers):
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers, response.read()


def test_the_image_migrates_an_empty_database_and_serves_the_login_page_with_its_css_read_only(
    image, stack, empty_database, tmp_path
):
    deployment = Deployment(stack, empty_database, tmp_path)
    try:
        code, output = deployment.run("Job", "migrate")
        assert code == 0, output
        assert "Applying provisioning.0001_initial... OK" in output

        web = deployment.start("web")
        wait_for_http(f"{deployment.url}/healthz", web, timeout=60)
        status, _, body = get(f"{deployment.url}/readyz")
        assert status == 200 and b'"ready": true' in body
        status, _, page = get(f"{deployment.url}/login/")
        assert status == 200 and 'name="password"' in page.decode()
        css = re.search(r'href="(/static/orgdns/app\.[0-9a-f]{12}\.css)"', page.decode()).group(1)
        status, headers, body = get(deployment.url + css, **{"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Type"].startswith("text/css")
        assert headers["Content-Encoding"] == "gzip" and "immutable" in headers["Cache-Control"]

        name = f"orgdns-test-web-{deployment.tag}"
        assert podman("exec", name, "id", "-u", capture_output=True).stdout.strip() == "10001"
        written = podman("exec", name, "touch", "/opt/orgdns/x", check=False, capture_output=True)
        assert written.returncode != 0 and "Read-only file system" in written.stderr
        assert podman("exec", name, "touch", "/tmp/x", check=False).returncode == 0  # the chart's emptyDir

        assert deployment.stop("web") == 0  # SIGTERM: requests under way finish, then it exits
        assert "Handling signal: term" in deployment.output("web")
    finally:
        deployment.remove_all()


@pytest.mark.django_db(transaction=True)
def test_a_cluster_registered_through_the_containerized_web_becomes_ready_and_its_externaldns_publishes(
    image, stack, personas, cluster_api, aws, tmp_path
):
    cluster_api.cluster.create_load_balancer_service("web", "web.acme.orgdns.test", "203.0.113.10")
    deployment = Deployment(stack, settings.DATABASES["default"]["NAME"], tmp_path)
    try:
        web = deployment.start("web")
        deployment.start("worker")
        deployment.start("scheduler")
        wait_for_http(f"{deployment.url}/healthz", web, timeout=60)

        _, token = api_tokens.create_token(personas.alice, "ci", 1)
        body = {"name": "prod", "api_server": cluster_api.url, "ca_pem": cluster_api.ca_pem, "token": cluster_api.token}
        request = urllib.request.Request(
            f"{deployment.url}/api/v1/organizations/acme/clusters",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            urllib.request.urlopen(request, timeout=30).close()  # 202: queued
        except urllib.error.HTTPError as refused:
            raise AssertionError(f"{refused}: {refused.read()[:2000]!r}") from None

        def ready():
            cluster = Cluster.objects.get(organization=personas.acme, name="prod")
            assert cluster.state != Cluster.State.ERROR, cluster.message
            return cluster.state == Cluster.State.READY

        wait_until(ready, timeout=180)  # the containerized worker ran the registration
        zone = HostedZone.objects.get(organization=personas.acme)
        wait_until(lambda: a_records(aws, zone.zone_id) == {"web.acme.orgdns.test.": "203.0.113.10"}, timeout=90)

        # The scheduler queues the sweep every minute; the containerized worker runs it.
        queue = django_rq.get_queue("default")

        def swept():
            jobs = Job.fetch_many(queue.finished_job_registry.get_job_ids(), connection=queue.connection)
            return any(job and "sweep_operations" in job.get_call_string() for job in jobs)

        wait_until(swept, timeout=150)

        # SIGTERM between two ticks (a job under way delays the exit until it ends: RQ's warm shutdown).
        wait_until(lambda: queue.started_job_registry.count == 0, timeout=60)
        assert deployment.stop("worker") == 0
        assert "warm shut down requested" in deployment.output("worker")
        assert deployment.stop("scheduler") == 0
    finally:
        deployment.remove_all()
