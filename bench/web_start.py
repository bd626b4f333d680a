"""`orgdns web` from a checkout: seconds for `orgdns collectstatic` (hashing, gzip and brotli), seconds from start to the
first /readyz 200, and /readyz's latency (PostgreSQL SELECT 1 + Redis PING) over many probes.

    .venv/bin/python bench/web_start.py [--probes 200]

Needs the PostgreSQL and Redis of devstack/require-services.sh --postgres."""

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pages import percentile  # noqa: E402
from devstack.processes import free_port  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:{os.environ.get('ORGDNS_PG_PORT', '54329')}/postgres"
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="orgdns-bench-web-"))
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(data),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        "ORGDNS_DATA_DIR": str(data),
        "ORGDNS_WEB_BIND": f"127.0.0.1:{port}",
    }
    orgdns = [sys.executable, "-m", "orgdns_site.cli"]
    try:
        started = time.perf_counter()
        subprocess.run([*orgdns, "collectstatic", "--noinput", "-v0"], env=env, cwd=data, check=True)
        collect = time.perf_counter() - started
        files = sum(1 for p in (data / "staticfiles").rglob("*") if p.is_file())

        started = time.perf_counter()
        web = subprocess.Popen(
            [*orgdns, "web"], env=env, cwd=data, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}/readyz"
        while True:
            try:
                if urllib.request.urlopen(url, timeout=5).status == 200:
                    break
            except OSError:
                time.sleep(0.02)
        ready = time.perf_counter() - started
        latencies = []
        for _ in range(args.probes):
            started = time.perf_counter()
            urllib.request.urlopen(url, timeout=5).read()
            latencies.append((time.perf_counter() - started) * 1000)
        web.send_signal(signal.SIGTERM)
        started = time.perf_counter()
        web.wait(60)
        stopped = time.perf_counter() - started
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print(f"collectstatic: {collect:.1f} s ({files} files written, with their .gz and .br)")
    print(f"orgdns web: start to the first /readyz 200 in {ready:.2f} s; stopped {stopped:.2f} s after SIGTERM")
    print(
        f"/readyz over {args.probes} probes: p50 {percentile(latencies, 50):.1f} ms, "
        f"p95 {percentile(latencies, 95):.1f} ms"
    )


if __name__ == "__main__":
    main()
