"""The kubelet's part for ExternalDNS pods of a local cluster: no container runtime runs here, so the real
external-dns binary runs as a local process with the pod's args, the env from its Secret, AWS pointed at the
local AWS, and a kubeconfig holding a token of the pod's ServiceAccount (TokenRequest), so its permissions are
the real RBAC ones. Readiness comes from its /healthz; crashes show as CrashLoopBackOff with the last log lines
(the container's FallbackToLogsOnError termination message); a deleted pod is stopped, then removed.

Each pod runs in a network namespace of its own with an address of its own (devstack/podnet.py, what a CNI plugin
does), reported as its podIP: ExternalDNS serves /healthz and /metrics on the pod's port 7979, which the API
server's proxy reaches like in any cluster (through the Service's endpoints or the pod). The pod reaches its API
server and the local AWS on its own loopback, bridged to the machine's.
"""

import base64
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from devstack import podnet

SELECTOR = "app.kubernetes.io/name=external-dns"
DEFAULT_HTTP_PORT = 7979  # ExternalDNS's default --metrics-address
MAX_BACKOFF = 40  # seconds; the kubelet's is 300, shortened so tests and the demo see restarts


class PodProcess:
    def __init__(self, pod):
        self.uid = pod["metadata"]["uid"]
        self.process = None
        self.network = None  # its podnet.PodNetwork, kept across restarts of its container
        self.log_path = None
        self.term_deadline = None  # set once SIGTERM was sent
        self.ready = False
        self.restarts = 0
        self.started_at = None
        self.last_exit = None  # (exit code, message, finished at)
        self.waiting = None  # (reason, message)
        self.backoff_until = 0.0
        self.reported = None


class ExternalDNSRunner:
    def __init__(self, cluster, binary, aws_endpoint_url, logs, interval=0.3):
        self.cluster = cluster
        self.binary = binary
        self.aws_endpoint_url = aws_endpoint_url
        self.logs = Path(logs)
        self.interval = interval
        self.pods = {}
        # The machine's ports a pod reaches on its own loopback: its API server and the local AWS.
        self.bridged_ports = [cluster.port, urlsplit(aws_endpoint_url).port]
        self.socket_dir, self.bridges = podnet.bridges(self.bridged_ports)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"externaldns-runner-{cluster.name}", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        for state in self.pods.values():
            _remove(state)
        self.pods.clear()
        for bridge in self.bridges:
            bridge.stop()
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # the API server restarting, a pod deleted under our feet: next round
                self._note(f"runner round failed: {exc!r}")
            self._stop.wait(self.interval)

    def sync(self):
        pods = self.cluster.objects("pods", selector=SELECTOR)
        live = set()
        for pod in pods:
            if not pod["spec"].get("nodeName"):
                continue
            uid = pod["metadata"]["uid"]
            live.add(uid)
            state = self.pods.setdefault(uid, PodProcess(pod))
            if pod["metadata"].get("deletionTimestamp"):
                self._terminate(pod, state)
                continue
            self._run(pod, state)
            self._report(pod, state)
        for uid in set(self.pods) - live:
            _remove(self.pods.pop(uid))

    def _run(self, pod, state):
        if state.process is not None and state.process.poll() is not None:
            state.restarts += 1
            state.last_exit = (state.process.returncode, _tail(state.log_path), _now())
            state.process = None
            state.ready = False
            backoff = min(10 * 2 ** (state.restarts - 1), MAX_BACKOFF)
            state.backoff_until = time.monotonic() + backoff
            state.waiting = ("CrashLoopBackOff", f"back-off {backoff}s restarting failed container")
        if state.process is None and time.monotonic() >= state.backoff_until:
            self._start(pod, state)
        if state.process is not None and not state.ready:
            state.ready = _healthy(state.network.address, _http_port(pod))

    def _start(self, pod, state):
        meta, container = pod["metadata"], pod["spec"]["containers"][0]
        try:
            env = self._env(meta["namespace"], container)
        except LookupError as exc:
            state.waiting = ("CreateContainerConfigError", str(exc))
            return
        token = self.cluster.api(
            "POST",
            f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{pod['spec'].get('serviceAccountName', 'default')}/token",
            {
                "spec": {
                    "expirationSeconds": 3600,
                    "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"], "uid": meta["uid"]},
                }
            },
        )["status"]["token"]
        workdir = self.logs / f"pod-{meta['namespace']}-{meta['name']}"
        workdir.mkdir(parents=True, exist_ok=True)
        # The pod's loopback has the API server at the machine's API server port (bridged), so its URL holds.
        kubeconfig = self.cluster.write_kubeconfig(workdir / "kubeconfig", token)
        if state.network is None:
            try:
                state.network = podnet.PodNetwork(self.socket_dir, self.bridged_ports)
            except podnet.PodNetworkError as exc:  # the kubelet's FailedCreatePodSandBox
                state.waiting = ("ContainerCreating", f"failed to create the pod's network: {exc}")
                return
        state.log_path = workdir / "external-dns.log"
        args = [*container.get("args", []), f"--kubeconfig={kubeconfig}", f"--metrics-address=:{_http_port(pod)}"]
        env = {
            **env,
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PATH": os.environ.get("PATH", ""),
        }
        state.process = subprocess.Popen(
            [*state.network.exec_prefix(), self.binary, *args],
            env=env,
            stdout=open(state.log_path, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        state.started_at = _now()
        state.waiting = None
        state.ready = False

    def _env(self, namespace, container):
        env = {}
        for source in container.get("envFrom", []):
            name = source.get("secretRef", {}).get("name")
            if name:
                env.update(self._secret(namespace, name))
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            elif ref := var.get("valueFrom", {}).get("secretKeyRef"):
                env[var["name"]] = self._secret(namespace, ref["name"])[ref["key"]]
        return env

    def _secret(self, namespace, name):
        secret = self.cluster.api("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if secret is None:
            raise LookupError(f'secret "{name}" not found')
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

    def _terminate(self, pod, state):
        if state.process is not None and state.process.poll() is None:
            if state.term_deadline is None:
                os.killpg(state.process.pid, signal.SIGTERM)
                state.term_deadline = time.monotonic() + (pod["spec"].get("terminationGracePeriodSeconds") or 30)
            if time.monotonic() < state.term_deadline:
                return
        _kill(state)
        meta = pod["metadata"]
        self.cluster.api(
            "DELETE",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
            {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
        )

    def _report(self, pod, state):
        container = pod["spec"]["containers"][0]
        running = state.process is not None
        status = {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": state.ready,
            "restartCount": state.restarts,
            "started": running,
            "state": {"running": {"startedAt": state.started_at}}
            if running
            else {
                "waiting": {"reason": state.waiting[0], "message": state.waiting[1]}
                if state.waiting
                else {"reason": "ContainerCreating"}
            },
        }
        if state.last_exit:
            code, message, finished = state.last_exit
            status["lastState"] = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Error" if code else "Completed",
                    "message": message,
                    "finishedAt": finished,
                }
            }
        address = str(state.network.address) if state.network else None
        key = (state.ready, running, state.restarts, state.waiting, address)
        if key == state.reported:
            return
        ready = "True" if state.ready else "False"
        previous = {c["type"]: c for c in pod.get("status", {}).get("conditions", [])}

        def condition(kind, value):
            old = previous.get(kind)
            since = old["lastTransitionTime"] if old and old["status"] == value else _now()
            return {"type": kind, "status": value, "lastTransitionTime": since}

        body = {
            "status": {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                **({"podIP": address, "podIPs": [{"ip": address}]} if address else {}),
                "startTime": pod.get("status", {}).get("startTime") or _now(),
                "conditions": [
                    condition("PodScheduled", "True"),
                    condition("Initialized", "True"),
                    condition("ContainersReady", ready),
                    condition("Ready", ready),
                ],
                "containerStatuses": [status],
            }
        }
        meta = pod["metadata"]
        self.cluster.api(
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
            body,
            content_type="application/merge-patch+json",
        )
        state.reported = key

    def _note(self, line):
        with open(self.logs / f"{self.cluster.name}-runner.log", "a") as log:
            log.write(f"{_now()} {line}\n")


def _http_port(pod):
    """The container's port named http (ExternalDNS's /healthz and /metrics)."""
    ports = pod["spec"]["containers"][0].get("ports", [])
    return next((p["containerPort"] for p in ports if p.get("name") == "http"), DEFAULT_HTTP_PORT)


def _healthy(address, port):
    """Its readiness probe, at the pod's address like the kubelet's."""
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _kill(state):
    if state.process is not None and state.process.poll() is None:
        os.killpg(state.process.pid, signal.SIGKILL)
        state.process.wait()
    state.process = None


def _remove(state):
    """The pod is gone: stop its process and remove its network namespace."""
    _kill(state)
    if state.network is not None:
        state.network.close()
        state.network = None


def _tail(path, limit=2048):
    """The last lines of the log, as the kubelet's FallbackToLogsOnError termination message."""
    data = Path(path).read_bytes()[-limit:].decode(errors="replace")
    return "\n".join(data.strip().splitlines()[-10:])


def _now():
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
