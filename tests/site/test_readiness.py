"""/healthz (liveness) and /readyz (the database and Redis answer), served by `orgdns web` against the real
PostgreSQL and Redis, and against ones that are gone or hung."""

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from devstack.processes import free_port, wait_for_http
from tests.conftest import PrivateRedis, manage_env

pytestmark = pytest.mark.integration  # processes of their own (web, collectstatic, a fresh venv) on the real servers

READY_TIMEOUT = 1  # seconds (ORGDNS_READY_TIMEOUT and DATABASE_CONNECT_TIMEOUT of the web process)


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    """Static files collected once for the module's web processes (`orgdns web` would collect them at its start)."""
    root = tmp_path_factory.mktemp("static")
    subprocess.run(
        [sys.executable, "-m", "orgdns_site.cli", "collectstatic", "--noinput", "-v0"],
        cwd=settings.BASE_DIR,
        env=manage_env(STATIC_ROOT=str(root)),
        check=True,
    )
    return root


@pytest.fixture
def web(static_root):
    """Starts `orgdns web` on the test database with these environment variables on top; yields its URL."""
    processes = []

    def start(**env):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "orgdns_site.cli", "web"],
            cwd=settings.BASE_DIR,
            env=manage_env(
                ORGDNS_WEB_BIND=f"127.0.0.1:{port}",
                ORGDNS_WEB_WORKERS="1",
                STATIC_ROOT=str(static_root),
                ORGDNS_READY_TIMEOUT=str(READY_TIMEOUT),
                DATABASE_CONNECT_TIMEOUT=str(READY_TIMEOUT),
                **env,
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", process, timeout=120)
        return url

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def get(url):
    """(status, body, seconds taken)."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode(), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), time.monotonic() - started


@pytest.mark.django_db
def test_ready_when_the_database_and_redis_answer(web):
    url = web()
    status, body, _ = get(f"{url}/readyz")
    assert status == 200
    assert json.loads(body) == {"ready": True, "database": "ok", "redis": "ok"}
    assert get(f"{url}/healthz")[:2] == (200, "ok")


@pytest.mark.django_db
def test_not_ready_without_the_database_says_so_without_its_password(web):
    db = settings.DATABASES["default"]
    url = web(DATABASE_URL=f"postgres://{db['USER']}:s3cret-pw@127.0.0.1:{free_port()}/{db['NAME']}")
    status, body, _ = get(f"{url}/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "database": "failed: OperationalError", "redis": "ok"}
    assert "s3cret-pw" not in body and "127.0.0.1" not in body
    assert get(f"{url}/healthz")[0] == 200  # alive all the same: restarting it would not bring the database back


@pytest.mark.django_db
def test_not_ready_without_redis(web):
    url = web(REDIS_URL=f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0")
    status, body, _ = get(f"{url}/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "database": "ok", "redis": "failed: ConnectionError"}
    assert "s3cret-pw" not in body


@pytest.mark.django_db
def test_a_hung_redis_fails_readiness_within_its_timeout(web, tmp_path):
    redis_server = PrivateRedis(tmp_path)
    try:
        url = web(REDIS_URL=f"redis://127.0.0.1:{redis_server.port}/0")
        assert get(f"{url}/readyz")[0] == 200
        redis_server.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
        status, body, seconds = get(f"{url}/readyz")
        assert status == 503
        assert json.loads(body)["redis"] == "failed: TimeoutError"
        assert seconds < READY_TIMEOUT + 2  # a probe's answer, not a hung request
        redis_server.process.send_signal(signal.SIGCONT)
        assert get(f"{url}/readyz")[0] == 200
    finally:
        redis_server.stop()
