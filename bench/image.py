"""The image's figures: its size (as podman stores it, and compressed as a registry stores it), its build time with
the Debian base cached (every layer built, then again after a change of orgdns's sources), and the time from
`podman run … web` to the first 200 of /readyz, then from SIGTERM to its exit. Runs the web as the chart does
(devstack/image.py), against Redis and a fresh PostgreSQL database of the devstack
(devstack/require-services.sh --postgres --image).

    .venv/bin/python -m bench.image [--starts N] [--no-build]
"""

import argparse
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg

from devstack.image import CONTAINERS, IMAGE, ROOT, build_image, podman, podman_run_command, render, workload
from devstack.processes import free_port

POSTGRES = os.environ.get(
    "BENCH_POSTGRES_URL", f"postgres://postgres@127.0.0.1:{os.environ.get('ORGDNS_PG_PORT', 54329)}"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def timed(action):
    started = time.monotonic()
    action()
    return time.monotonic() - started


def build_times():
    every_layer = timed(lambda: build_image("--no-cache"))
    touched = ROOT / "orgdns_site" / ".bench-source-change"  # in the build context, not in the wheel
    touched.write_text(uuid.uuid4().hex)
    try:
        source_change = timed(build_image)
    finally:
        touched.unlink()
        build_image()  # the image of the checkout as it is
    return every_layer, source_change


def sizes(directory):
    """(bytes as podman stores it, unpacked; bytes of its OCI archive, whose layers are gzip-compressed as a registry
    stores them)"""
    stored = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE, capture_output=True).stdout)
    archive = Path(directory) / "image.oci.tar"
    podman("save", "--quiet", "--format", "oci-archive", "-o", str(archive), IMAGE)
    return stored, archive.stat().st_size


def start_to_ready(directory, database, starts):
    port = free_port()
    values = {"web": {"port": port}, "config": {"ORGDNS_BASE_DOMAIN": "bench.example.com"}}
    objects = render(values, directory)
    secret = {"SECRET_KEY": uuid.uuid4().hex * 2, "DATABASE_URL": f"{POSTGRES}/{database}", "REDIS_URL": REDIS_URL}
    migrate = podman_run_command(
        objects, workload(objects, "Job", "migrate")["spec"]["template"], secret, "bench-migrate"
    )
    podman(*migrate, capture_output=True)
    template = workload(objects, "Deployment", "web")["spec"]["template"]
    ready, stopped = [], []
    for attempt in range(starts):
        name = f"bench-web-{attempt}"
        started = time.monotonic()
        web = subprocess.Popen(
            [str(CONTAINERS), "podman", *podman_run_command(objects, template, secret, name)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if web.poll() is not None or time.monotonic() - started > 120:
                raise SystemExit(f"the web did not become ready (exit code {web.returncode})")
            time.sleep(0.02)
        ready.append(time.monotonic() - started)
        signalled = time.monotonic()
        web.send_signal(signal.SIGTERM)
        code = web.wait(60)
        stopped.append(time.monotonic() - signalled)
        if code != 0:
            raise SystemExit(f"the web exited with {code} on SIGTERM")
    return ready, stopped


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--no-build", action="store_true", help="measure the image as it is")
    options = parser.parse_args()
    if not options.no_build:
        every_layer, source_change = build_times()
        print(f"build, base cached: every layer {every_layer:.0f} s; after a source change {source_change:.0f} s")
    with tempfile.TemporaryDirectory(prefix="orgdns-bench-image-") as directory:
        stored, archive = sizes(directory)
        print(
            f"image size: {stored / 1e6:.0f} MB unpacked (podman images); {archive / 1e6:.0f} MB as an OCI archive "
            "(gzip-compressed layers, as a registry stores and serves them)"
        )
        database = f"orgdns_bench_image_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        try:
            ready, stopped = start_to_ready(directory, database, options.starts)
        finally:
            with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    print(f"podman run … web to /readyz 200: {', '.join(f'{s:.2f}' for s in ready)} s (best {min(ready):.2f} s)")
    print(f"SIGTERM to exit: {', '.join(f'{s:.2f}' for s in stopped)} s")


if __name__ == "__main__":
    main()
