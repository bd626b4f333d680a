"""The wheel, as an operator installs it: built from the checkout, installed in a fresh virtualenv, run with DEBUG=0
and settings from the environment only — `orgdns migrate`, then `orgdns web` serving the dashboard with its CSS and
htmx from whitenoise, /readyz against the real PostgreSQL and Redis, and a graceful stop on SIGTERM."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
import venv
import zipfile
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from django.conf import settings

from devstack.processes import free_port, wait_for_http

pytestmark = pytest.mark.integration  # processes of their own (web, collectstatic, a fresh venv) on the real servers

ROOT = Path(settings.BASE_DIR)
LOCK = ROOT / "requirements.lock"


def run(*command, **options):
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=900, **options)


@pytest.fixture(scope="module")
def installed():
    """orgdns's wheel installed in a virtualenv of its own (the dependencies from the lock file, by hash), and a
    PostgreSQL database of its own."""
    # Not under pytest's shared base directory: other runs on the machine prune it while this one uses it.
    where = Path(tempfile.mkdtemp(prefix="orgdns-wheel-"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(where / "dist"), str(ROOT))
    (wheel,) = (where / "dist").glob("orgdns-*.whl")
    venv.create(where / "venv", with_pip=True)  # from this interpreter, without the system's site-packages
    python = where / "venv" / "bin" / "python"
    if LOCK.exists():
        run(python, "-m", "pip", "install", "-q", "--require-hashes", "-r", str(LOCK))
        run(python, "-m", "pip", "install", "-q", "--no-deps", str(wheel))
    else:
        run(python, "-m", "pip", "install", "-q", str(wheel))
    db = settings.DATABASES["default"]
    name = f"orgdns_wheel_{os.getpid()}"
    admin = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    data = where / "data"
    data.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(where),
        "DEBUG": "0",
        "SECRET_KEY": "wheel-test-secret-key-wheel-test-secret-key",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}",
        "REDIS_URL": settings.REDIS_URL,
        "ORGDNS_DATA_DIR": str(data),
        "ORGDNS_WEB_WORKERS": "1",
    }
    yield SimpleNamespace(
        wheel=wheel, bin=where / "venv" / "bin", site=site_packages(python), env=env, data=data, cwd=where
    )
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    shutil.rmtree(where, ignore_errors=True)


def site_packages(python):
    return Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())


def test_the_wheel_carries_templates_static_files_and_migrations_not_the_devstack_nor_tests(installed):
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert "orgdns_site/templates/base.html" in names
    assert "orgdns_site/templates/registration/login.html" in names
    assert "orgdns_site/templates/provisioning/lists/cluster.html" in names
    assert "orgdns_site/static/orgdns/app.css" in names
    assert "provisioning/migrations/0001_initial.py" in names
    assert "orgdns_site/cli.py" in names
    assert not [n for n in names if n.split("/")[0] in ("devstack", "bench", "tests", "docs")]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "orgdns = orgdns_site.cli:main" in zipfile.ZipFile(installed.wheel).read(entry_points).decode()


def test_orgdns_migrate_then_web_serve_the_dashboard_with_its_css_and_htmx(installed):
    orgdns = str(installed.bin / "orgdns")
    migrated = run(orgdns, "migrate", "--noinput", env=installed.env, cwd=installed.cwd)
    assert "Applying provisioning.0001_initial... OK" in migrated.stdout
    port = free_port()
    web = subprocess.Popen(
        [orgdns, "web"],
        env={**installed.env, "ORGDNS_WEB_BIND": f"127.0.0.1:{port}"},
        cwd=installed.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", web, timeout=240)  # the first start collects static files
        ready = urllib.request.urlopen(f"{url}/readyz", timeout=10)
        assert ready.status == 200
        login = urllib.request.urlopen(f"{url}/login/", timeout=10).read().decode()
        assert "<form" in login and 'name="password"' in login
        css = re.search(r'href="(/static/orgdns/app\.[0-9a-f]{12}\.css)"', login).group(1)
        htmx = re.search(r'src="(/static/django_htmx/htmx[^"]*\.[0-9a-f]{12}\.js)"', login).group(1)
        for path, kind in ((css, "text/css"), (htmx, "text/javascript")):
            request = urllib.request.Request(url + path, headers={"Accept-Encoding": "br, gzip"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith(kind)
                assert response.headers["Content-Encoding"] in ("br", "gzip")  # compressed at collectstatic
                cache = response.headers["Cache-Control"]
                assert "immutable" in cache and int(re.search(r"max-age=(\d+)", cache).group(1)) >= 365 * 24 * 3600
        plain = urllib.request.urlopen(url + css, timeout=10).read().decode()
        assert "body" in plain  # the stylesheet itself, uncompressed for a client that asks for no encoding
    finally:
        web.send_signal(signal.SIGTERM)
        output = web.communicate(timeout=60)[0]
    assert web.returncode == 0, output
    assert "Handling signal: term" in output and "Shutting down: Master" in output
    # What orgdns wrote went to ORGDNS_DATA_DIR (the collected static files), nothing into the installed package.
    assert (installed.data / "staticfiles" / "staticfiles.json").exists()
    assert not list(installed.site.rglob("*.sqlite3"))
    assert not list(installed.site.rglob("staticfiles.json"))
