"""Real local servers for the suite: moto (AWS), OpenBao (Vault), Kubernetes control planes running the real
ExternalDNS (devstack/cluster.py), Redis, PostgreSQL."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import boto3
import django_rq
import hvac
import pytest
from botocore.awsrequest import AWSResponse
from django.conf import settings

from devstack.cluster import ClusterFarm
from devstack.directory import start_slapd
from devstack.policies import scoped_vault_token
from devstack.processes import free_port, port_open, start_bao, start_moto, stop
from orgdns_site.workers import SimpleWorker
from provisioning.models import Membership, Organization
from provisioning.services import backends
from provisioning.services.people import api_tokens
from tests.instants import INSTANTS

VAULT_ROOT_TOKEN = "orgdns-test-root-token"


@pytest.fixture(scope="session")
def servers():
    moto, moto_url = start_moto(free_port())
    bao, bao_url = start_bao(free_port(), VAULT_ROOT_TOKEN)
    yield SimpleNamespace(moto_url=moto_url, vault_url=bao_url, moto=moto, bao=bao)
    stop(moto)
    stop(bao)


@pytest.fixture(scope="session")
def directory(tmp_path_factory):
    """The company directory: a real OpenLDAP (slapd) of the run's own, people and groups added by each test."""
    workdir = tmp_path_factory.mktemp("slapd")
    running = start_slapd(workdir, log=open(workdir / "slapd.log", "w"))
    yield running
    running.stop()


# Three tiers (docs/development.md), decided by what each test uses, so that none lands in the wrong one unnoticed:
# - fast (`make check`): the tests under tests/unit/, marked `fast`. No server and no database.
# - database (`make check-db`): every other test that uses none of INTEGRATION_FIXTURES and is not marked
#   `integration`: PostgreSQL only. Reaching for anything else over the network (moto, OpenBao, Redis, a cluster)
#   fails at once (DatabaseTierGuard).
# - integration (`make check-integration`): the real servers, for what crosses a boundary: the tests using one of
#   INTEGRATION_FIXTURES, or marked `integration` (those that reach a server without one: workers, subprocesses...).
UNIT_TESTS = Path(__file__).parent / "unit"
INTEGRATION_FIXTURES = {
    *("servers", "aws", "vault", "aws_faults", "cluster_farm", "cluster_api", "make_cluster_api", "private_redis"),
    *("live_server", "directory", "dex"),
}
DATABASE = {"db", "transactional_db", "django_db_setup"}


def tier_of(item):
    if item.path.is_relative_to(UNIT_TESTS) or item.get_closest_marker("fast"):
        return "fast"
    if item.get_closest_marker("integration") or INTEGRATION_FIXTURES.intersection(item.fixturenames):
        return "integration"
    return "database"


def pytest_collection_modifyitems(config, items):
    refused = []
    for item in items:
        tier = tier_of(item)
        item.add_marker(tier)
        if tier == "fast":
            uses = (INTEGRATION_FIXTURES | DATABASE).intersection(item.fixturenames)
            if item.get_closest_marker("django_db"):
                uses.add("django_db")
            if uses or not item.path.is_relative_to(UNIT_TESTS):
                refused.append(f"{item.nodeid}: {', '.join(sorted(uses)) or 'not under tests/unit/'}")
    if refused:
        raise pytest.UsageError("fast tests live in tests/unit/ and use no server nor database:\n" + "\n".join(refused))


class ReachedForAServer(BaseException):
    """A database-tier test opened a network connection. A BaseException: clients that catch Exception and retry
    (botocore, redis, hvac) let it through, so the test fails at once with this message."""


class DatabaseTierGuard:
    """While a database-tier test runs, every network connection made from Python by the test's thread is refused
    (PostgreSQL's is made by libpq, below Python, and the database's own address is let through in case a driver
    resolves it here). Other threads are let be: session fixtures of the integration tier run threads of their own."""

    def __init__(self):
        self.test = None  # the node id of the database-tier test running, else None
        self.allowed = set()
        sys.addaudithook(self.audit)

    def audit(self, event, args):
        if self.test is None or event not in ("socket.connect", "socket.getaddrinfo"):
            return
        if threading.current_thread() is not threading.main_thread():
            return  # a session fixture's thread (a cluster's pod runner, say): not the test's doing
        address = args[1] if event == "socket.connect" else args[:2]
        if isinstance(address, tuple) and len(address) >= 2 and (str(address[0]), str(address[1])) in self.allowed:
            return
        test, self.test = self.test, None  # once: the failure's own reporting may use the network
        raise ReachedForAServer(
            f"{test} is a database-tier test (PostgreSQL only) but reached for {self.what(address)}. A test that "
            "crosses to moto, OpenBao, Redis or a cluster belongs to the integration tier: use the server's fixture "
            "(aws, vault, cluster_api, private_redis, ...) or mark it @pytest.mark.integration."
        )

    @staticmethod
    def what(address):
        if not isinstance(address, tuple):
            return f"the socket {address!r}"
        host, port = str(address[0]), address[1]
        named = {"aws.invalid": "AWS (moto)", "vault.invalid": "Vault (OpenBao)", "redis.invalid": "Redis"}
        if host in named:
            return named[host]
        if str(port) == str(urlsplit(settings.REDIS_URL).port or 6379):
            return f"Redis ({host}:{port})"
        return f"a server at {host}:{port}"


DATABASE_TIER_GUARD = DatabaseTierGuard()
# Where a database-tier test's AWS, Vault and Redis are: nowhere (.invalid names never resolve).
NOWHERE = {
    "AWS_ENDPOINT_URL": "http://aws.invalid",
    "VAULT_ADDR": "http://vault.invalid:8200",
    "VAULT_TOKEN": "no-vault-in-the-database-tier",
    "VAULT_PREFIX": "orgdns-test-nowhere",
    "ORGDNS_PARENT_ZONE_ID": "",
}


@pytest.fixture(autouse=True)
def stack(request):
    """Each integration test gets an empty AWS account, its own Vault prefix, an empty Redis database and no AWS
    fault hooks; a database-tier test gets backends pointing nowhere and the guard; a fast test nothing."""
    tier = tier_of(request.node)
    if tier == "fast":
        yield None
        return
    if tier == "database":
        saved = {name: getattr(settings, name) for name in NOWHERE}
        for name, value in NOWHERE.items():
            setattr(settings, name, value)
        backends.aws_session.cache_clear()
        backends.role_credentials.cache_clear()
        db = settings.DATABASES["default"]
        DATABASE_TIER_GUARD.allowed = {(str(db["HOST"]), str(db["PORT"]))}
        # The API's per-token rate limit is counted in Redis on every request: not applied in this tier (the
        # integration tier proves it against Redis: tests/api/test_ratelimit.py).
        request.getfixturevalue("monkeypatch").setattr(api_tokens, "rate_limit_wait", lambda identity: 0.0)
        DATABASE_TIER_GUARD.test = request.node.nodeid
        try:
            yield None
        finally:
            DATABASE_TIER_GUARD.test = None
            for name, value in saved.items():
                setattr(settings, name, value)
        return
    servers = request.getfixturevalue("servers")
    urllib.request.urlopen(urllib.request.Request(f"{servers.moto_url}/moto-api/reset", method="POST"))
    settings.AWS_ENDPOINT_URL = servers.moto_url
    settings.VAULT_ADDR = servers.vault_url
    settings.VAULT_PREFIX = f"orgdns-test-{uuid.uuid4().hex[:8]}"
    # orgdns runs with docs/policies/'s Vault policy for its prefix, not the root token: the suite proves the policy enough.
    settings.VAULT_TOKEN = scoped_vault_token(servers.vault_url, VAULT_ROOT_TOKEN, "secret", settings.VAULT_PREFIX)
    settings.ORGDNS_PARENT_ZONE_ID = ""
    backends.aws_session.cache_clear()
    backends.role_credentials.cache_clear()  # moto forgets the roles' credentials with the rest
    django_rq.get_connection("default").flushdb()
    yield SimpleNamespace(moto_url=servers.moto_url, vault_url=servers.vault_url)
    backends.aws_session.cache_clear()


@pytest.fixture(params=INSTANTS, ids=str)
def instant(request, settings):
    """Runs the test once at each of tests/instants.py's fixed instants, in the instant's TIME_ZONE."""
    settings.TIME_ZONE = request.param.time_zone
    return request.param


@pytest.fixture
def aws(stack):
    """boto3 clients on the same moto account the code under test uses."""

    def client(name):
        return boto3.client(name, endpoint_url=stack.moto_url, region_name="us-east-1")

    return SimpleNamespace(route53=client("route53"), iam=client("iam"), sts=client("sts"))


@pytest.fixture
def vault(stack):
    """A root client, to look at (and tamper with) what orgdns stored."""
    return hvac.Client(url=stack.vault_url, token=VAULT_ROOT_TOKEN)


def vault_tree(client, path):
    """Every secret path under path (recursively)."""
    try:
        keys = client.secrets.kv.v2.list_secrets(path=path, mount_point="secret")["data"]["keys"]
    except hvac.exceptions.InvalidPath:
        return []
    found = []
    for key in keys:
        if key.endswith("/"):
            found += vault_tree(client, f"{path}/{key.rstrip('/')}")
        else:
            found.append(f"{path}/{key}")
    return found


@pytest.fixture(scope="session")
def cluster_farm(servers, tmp_path_factory):
    """Real Kubernetes clusters, started when first needed and reused by later tests (reset in between)."""
    farm = ClusterFarm(logs=tmp_path_factory.mktemp("clusters"), aws_endpoint_url=servers.moto_url)
    yield farm
    farm.stop()


@pytest.fixture
def make_cluster_api(cluster_farm):
    """make() -> a real cluster of its own for this test, as orgdns reaches it (through a fault proxy)."""
    taken = []

    def make():
        taken.append(cluster_farm.acquire())
        return taken[-1]

    yield make
    for cluster in taken:
        cluster_farm.release(cluster)


@pytest.fixture
def cluster_api(make_cluster_api):
    return make_cluster_api()


def start_worker_process(*options):
    """`manage.py rqworker` in its own process, on the test database and the test's servers."""
    return start_manage_process("rqworker", *options, "default", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_manage_process(*args, env=None, **popen):
    """`manage.py <args>` in its own process, on the test database and the test's servers (plus env)."""
    return subprocess.Popen(manage_command(*args), cwd=settings.BASE_DIR, env=manage_env(**(env or {})), **popen)


def manage_command(*args):
    return [sys.executable, "manage.py", *args]


def manage_env(**extra):
    """The environment of a `manage.py` process on the test database and the test's servers, plus extra."""
    db = settings.DATABASES["default"]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "AWS_ENDPOINT_URL": settings.AWS_ENDPOINT_URL,
        "VAULT_ADDR": settings.VAULT_ADDR,
        "VAULT_TOKEN": settings.VAULT_TOKEN,
        "VAULT_PREFIX": settings.VAULT_PREFIX,
        "REDIS_URL": settings.REDIS_URL,
        **extra,
    }


def wait_until(condition, timeout=60):
    """For what other processes (workers) do: poll until condition() holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the workers"
        time.sleep(0.05)


def run_jobs():
    """Run every queued job to the end in this process, as a worker would."""
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@pytest.fixture
def personas(django_user_model):
    """alice owns acme, bob is a member of globex, vera views acme, charlie belongs nowhere, sam is staff."""
    acme = Organization.objects.create(name="acme")
    globex = Organization.objects.create(name="globex")
    users = {}
    for name in ("alice", "bob", "vera", "charlie"):
        users[name] = django_user_model.objects.create_user(name, password="pw-" + name)
    users["sam"] = django_user_model.objects.create_user("sam", password="pw-sam", is_staff=True)
    Membership.objects.create(user=users["alice"], organization=acme, role=Membership.Role.OWNER)
    Membership.objects.create(user=users["bob"], organization=globex, role=Membership.Role.MEMBER)
    Membership.objects.create(user=users["vera"], organization=acme, role=Membership.Role.VIEWER)
    return SimpleNamespace(acme=acme, globex=globex, **users)


class _RawBody:
    def __init__(self, body):
        self.body = body

    def stream(self, **_):
        yield self.body


class AwsFaults:
    """Faults injected where botocore sends requests: throttling, errors, a worker dying after a call."""

    def __init__(self):
        self.events = backends.aws_session().events
        self.sent = Counter()

    def error(self, service, operation, code, times, status=400):
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected {code}</Message></Error>"
            "<RequestId>test</RequestId></ErrorResponse>"
        ).encode()
        remaining = [times]

        def reply(request, **_):
            self.sent[operation] += 1
            if remaining[0] > 0:
                remaining[0] -= 1
                return AWSResponse(request.url, status, {}, _RawBody(body))
            return None

        self.events.register(f"before-send.{service}.{operation}", reply)

    def die_after(self, service, operation):
        """The worker dies right after AWS carried out this call (so its result is lost)."""

        def die(**_):
            raise WorkerDied(f"worker died after {operation}")

        self.events.register(f"after-call.{service}.{operation}", die)

    def heal(self):
        """Back to a healthy AWS: a fresh session without the injected hooks."""
        backends.aws_session.cache_clear()


class WorkerDied(Exception):
    pass


@pytest.fixture
def aws_faults(stack):
    return AwsFaults()


class PrivateRedis:
    """A Redis server of one test's own, which the test may freeze (SIGSTOP) or restart empty."""

    def __init__(self, directory):
        self.port = free_port()
        self.command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ]
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=10)

    def restart_empty(self):
        self.stop()
        self.start()

    def stop(self):
        self.process.send_signal(signal.SIGCONT)
        self.process.kill()
        self.process.wait()


@pytest.fixture
def private_redis(settings, tmp_path):
    """orgdns's Redis (queue, locks, heartbeats) is a server of this test's own."""
    server = PrivateRedis(tmp_path)
    settings.REDIS_URL = f"redis://127.0.0.1:{server.port}/0"
    settings.RQ_QUEUES = {
        "default": {
            **settings.RQ_QUEUES["default"],
            "URL": f"{settings.REDIS_URL}?socket_timeout=2&socket_connect_timeout=2",
        }
    }
    yield server
    server.stop()
