"""Start the local stand-ins for AWS (moto) and Vault (OpenBao) as child processes."""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from devstack import podnet

BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host, port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for_http(url, process=None, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before serving {url}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url} within {timeout}s")


def _executable(name):
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name


def start_moto(port, log=subprocess.DEVNULL):
    process = subprocess.Popen(
        [_executable("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=log,
    )
    podnet.guard(pid=process.pid)  # killed even if we are
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/moto-api/", process)
    return process, url


def start_bao(port, token, log=subprocess.DEVNULL):
    """An OpenBao dev server: in memory, KV v2 at secret/, never touching ~/.vault-token."""
    env = {**os.environ, "HOME": os.environ.get("HOME", "/tmp")}
    env.pop("VAULT_TOKEN", None)
    env.pop("BAO_TOKEN", None)
    process = subprocess.Popen(
        [
            _executable("bao"),
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            "-dev-no-store-token",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
        env=env,
    )
    podnet.guard(pid=process.pid)  # killed even if we are
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/v1/sys/health", process)
    return process, url


def stack_env(moto_url, vault_url, vault_token, access_key):
    """The settings that point orgdns (and the aws and bao CLIs) at a local moto and OpenBao, and let it reach the
    local clusters."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(32),  # orgdns refuses to start without one unless DEBUG is on
        "ORGDNS_CLUSTER_PERMITTED_NETWORKS": "127.0.0.0/8,::1/128",  # the local clusters listen on loopback
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": access_key,  # moto takes any key
        "AWS_SECRET_ACCESS_KEY": access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "VAULT_ADDR": vault_url,
        "VAULT_TOKEN": vault_token,
    }


def chromium():
    """Debian's Chromium, with the flags it needs here (root, no GPU, no network of its own)."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    return path, [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ]


def stop(process, timeout=10):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Supervisor:
    """Runs long-lived processes and starts again any that exits, saying so (what systemd's Restart=always does
    for the deployment of docs/hosts.md)."""

    def __init__(self, cwd, poll_seconds=1.0):
        self.cwd = cwd
        self.poll_seconds = poll_seconds
        self.children = {}  # name -> (command, log path, environment, Popen)
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="supervisor")

    def start(self, name, command, log_path, env=None):
        open(log_path, "w").close()
        self.children[name] = (command, log_path, env, self._spawn(command, log_path, env))
        if not self._thread.is_alive():
            self._thread.start()

    def pid(self, name):
        return self.children[name][-1].pid

    def _spawn(self, command, log_path, env):
        process = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=env,
            stdout=open(log_path, "a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        podnet.guard(pid=process.pid)  # it and its group killed even if we are
        return process

    @staticmethod
    def _end_group(process):
        """Kill what the process left in its process group (an RQ worker's scheduler process outlives a SIGKILL)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def _watch(self):
        while not self._stopping.wait(self.poll_seconds):
            for name, (command, log_path, env, process) in list(self.children.items()):
                if process.poll() is not None and not self._stopping.is_set():
                    self._end_group(process)
                    print(
                        f"[supervisor] {name} exited (status {process.returncode}): started again; see {log_path}",
                        flush=True,
                    )
                    self.restarts += 1
                    self.children[name] = (command, log_path, env, self._spawn(command, log_path, env))

    def stop(self):
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        for *_, process in reversed(list(self.children.values())):
            stop(process)
            self._end_group(process)
