"""Pod networks for the local clusters: what a CNI plugin does for a pod, made with iproute2 (root only).

Each pod gets a network namespace of its own (`ip netns add`) holding one end of a veth pair with the pod's address,
taken from POD_NETWORK. The other end stays in the machine's namespace without any address (no IPv6 link-local
either); a host route to the pod's /32 through it lets the API server's proxy (and the runner's readiness probe)
reach the pod. The machine's own interfaces get no address, and the machine forwards nothing to or from a pod.

The pod reaches its API server and the local AWS only through its own loopback: a forwarder inside its namespace
listens on 127.0.0.1:PORT and relays each connection over a Unix socket (paths cross network namespaces) to a
UnixBridge in the machine's namespace, which connects to the machine's 127.0.0.1:PORT. An nftables rule in the pod's
namespace drops any connection the pod itself opens through its veth, so it never targets the machine's addresses.

Everything made here is named after the process that made it (orgdns-pod-<pid>-<n>) and removed when it is done
with; a guard process removes what is left when that process dies (even by SIGKILL), with the other processes of the
devstack it was told about (guard()), and the next start removes what a dead process left behind without a guard.

Run as a script it is the forwarder (`forward PORT=SOCKET...`) or the guard (`guard PID`); stdlib only.
"""

import contextlib
import ipaddress
import itertools
import os
import random
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# RFC 2544's benchmarking range: never routed on the Internet, and here only ever a /32 route to a veth.
POD_NETWORK = ipaddress.ip_network("198.18.0.0/15")
NETNS_PREFIX = "orgdns-pod-"
POD_INTERFACE = "eth0"  # the pod's end of its veth pair, as a container sees it
_names = itertools.count(1)
_guard_lock = threading.Lock()
_guard = None
EGRESS_RULES = f"""
table inet orgdns_pod {{
  chain output {{
    type filter hook output priority 0; policy accept;
    oifname "{POD_INTERFACE}" ct state established,related accept
    oifname "{POD_INTERFACE}" drop
  }}
}}
"""


class PodNetworkError(RuntimeError):
    pass


def available():
    """Why pod networks cannot be made here, or "" if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, as CI does)"
    for tool in ("ip", "nft"):
        if not shutil.which(tool):
            return f"{tool} is missing: run devstack/require-services.sh --cluster (installs iproute2 and nftables)"
    return ""


def _run(*command, check=True):
    done = subprocess.run(command, capture_output=True, text=True)
    if check and done.returncode:
        raise PodNetworkError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")
    return done


class PodNetwork:
    """One pod's network namespace, its address, and the forwarder giving it its API server and AWS."""

    def __init__(self, socket_dir, ports):
        """ports: the machine's loopback ports the pod reaches at the same port on its own loopback, each bridged
        through socket_dir/<port>.sock (see UnixBridge)."""
        problem = available()
        if problem:
            raise PodNetworkError(problem)
        _start_guard()
        n = next(_names)
        owner = os.getpid()
        self.name = f"{NETNS_PREFIX}{owner}-{n}"
        self.host_link = host_link(self.name)
        self.address = None
        self.forwarder = None
        _run("ip", "netns", "add", self.name)
        try:
            self._plumb()
            nft = subprocess.run(["ip", "netns", "exec", self.name, "nft", "-f", "-"], input=EGRESS_RULES, text=True)
            if nft.returncode:
                raise PodNetworkError(f"nft in {self.name} failed ({nft.returncode})")
            forwards = [f"{port}={Path(socket_dir) / f'{port}.sock'}" for port in ports]
            self.forwarder = subprocess.Popen(
                [*self.exec_prefix(), sys.executable, __file__, "forward", *forwards],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            _wait_listening(self, ports)
        except BaseException:
            self.close()
            raise

    def _plumb(self):
        _run("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", POD_INTERFACE, "netns", self.name)
        _run("ip", "link", "set", self.host_link, "addrgenmode", "none")  # no IPv6 link-local on the machine's end
        _run("ip", "link", "set", self.host_link, "up")
        self.address = _claim_address(self.host_link)
        pod = ("ip", "-n", self.name)
        _run(*pod, "address", "add", f"{self.address}/32", "dev", POD_INTERFACE)
        _run(*pod, "link", "set", "lo", "up")
        _run(*pod, "link", "set", POD_INTERFACE, "up")
        _run(*pod, "route", "add", "default", "dev", POD_INTERFACE)  # answers go back through the veth

    def exec_prefix(self):
        """The command prefix that runs a program inside this namespace."""
        return ["ip", "netns", "exec", self.name]

    def close(self):
        """Stop everything running in the namespace and delete it (the veth pair and its route go with it)."""
        remove_namespace(self.name)
        if self.forwarder is not None:
            self.forwarder.wait()
            self.forwarder = None


def _claim_address(link):
    """A free pod address: the host route to it is the claim, so two processes never take the same one."""
    size = POD_NETWORK.num_addresses
    start = random.randrange(1, size - 1)
    for offset in range(size - 2):
        address = POD_NETWORK[1 + (start + offset) % (size - 2)]
        done = _run("ip", "route", "add", f"{address}/32", "dev", link, check=False)
        if done.returncode == 0:
            return address
        if "File exists" not in done.stderr:
            raise PodNetworkError(f"ip route add {address}/32 dev {link}: {done.stderr.strip()}")
    raise PodNetworkError(f"no free address left in {POD_NETWORK}")


def _wait_listening(network, ports, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        listening = _run(*network.exec_prefix(), "ss", "-Hltn", check=False).stdout
        if all(f"127.0.0.1:{port} " in listening for port in ports):
            return
        if network.forwarder.poll() is not None or time.monotonic() > deadline:
            raise PodNetworkError(f"the forwarder in {network.name} did not listen on ports {ports}")
        time.sleep(0.05)


def host_link(namespace):
    """The machine's end of the veth pair of the pod namespace of this name."""
    return f"od{namespace[len(NETNS_PREFIX) :]}"[:15]


def remove_namespace(name):
    """Kill what runs in it, remove its veth pair (its host route goes with it) and delete it."""
    for pid in _run("ip", "netns", "pids", name, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 5  # SIGKILLed processes leave the namespace once reaped
    while _run("ip", "netns", "pids", name, check=False).stdout.split() and time.monotonic() < deadline:
        time.sleep(0.05)
    _run("ip", "link", "delete", host_link(name), check=False)  # at once: the kernel frees a namespace later
    _run("ip", "netns", "delete", name, check=False)


def namespaces(owner=None):
    """Names of the pod namespaces made by process owner (by any process if None)."""
    if not shutil.which("ip"):
        return []
    listed = _run("ip", "netns", "list", check=False).stdout.splitlines()
    names = [line.split()[0] for line in listed if line.startswith(NETNS_PREFIX)]
    return [n for n in names if owner is None or n.startswith(f"{NETNS_PREFIX}{owner}-")]


def remove_stale():
    """Remove the pod namespaces of processes that are gone."""
    for name in namespaces():
        owner = int(name[len(NETNS_PREFIX) :].split("-")[0])
        if not _alive(owner):
            remove_namespace(name)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_guard():
    """Once per process: a guard that outlives it and removes its pod namespaces when it ends, however it ends."""
    global _guard
    with _guard_lock:
        if _guard is not None and _guard.poll() is None:
            return
        remove_stale()
        _guard = subprocess.Popen(
            [sys.executable, __file__, "guard", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C or a kill of our process group leaves it running to clean up
        )


def guard(pid=None, path=None):
    """Have the guard also kill process pid (and its group if it leads one), or remove directory path, when this
    process ends."""
    _start_guard()
    with _guard_lock:
        _guard.stdin.write(f"{'pid' if pid else 'path'} {pid or path}\n".encode())
        _guard.stdin.flush()


class UnixBridge:
    """In the machine's namespace: a Unix socket at path whose every connection is relayed to 127.0.0.1:port."""

    def __init__(self, path, port):
        self.path = str(path)

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with socket.create_connection(("127.0.0.1", port), timeout=10) as upstream:
                    upstream.settimeout(None)
                    relay(self.request, upstream)

        self.server = socketserver.ThreadingUnixStreamServer(self.path, Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name=f"bridge-{port}")
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        Path(self.path).unlink(missing_ok=True)


def bridges(ports):
    """(socket directory, UnixBridges) for the machine's loopback ports pods reach."""
    directory = tempfile.mkdtemp(prefix="orgdns-pods-")  # short: a Unix socket path holds at most 107 bytes
    guard(path=directory)
    return directory, [UnixBridge(Path(directory) / f"{port}.sock", port) for port in ports]


def relay(a, b):
    """Copy bytes both ways between two connected sockets until both sides are done."""

    def pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=pump, args=(b, a), daemon=True)
    other.start()
    pump(a, b)
    other.join()


def _forward(specs):
    """Inside a pod's namespace: listen on 127.0.0.1:PORT and relay each connection to the Unix socket."""

    def serve(port, path):
        listener = socket.create_server(("127.0.0.1", port))
        while True:
            client, _ = listener.accept()
            threading.Thread(target=_relay_to_unix, args=(client, path), daemon=True).start()

    threads = []
    for spec in specs:
        port, path = spec.split("=", 1)
        threads.append(threading.Thread(target=serve, args=(int(port), path), daemon=True))
        threads[-1].start()
    for thread in threads:
        thread.join()


def _relay_to_unix(client, path):
    with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
        try:
            upstream.connect(path)
        except OSError:
            return
        relay(client, upstream)


def _guard_process(owner):
    """Note what the owner names on our stdin until its end closes (it ended), then kill and remove it all."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    processes, paths = {}, []
    for line in sys.stdin:
        kind, _, value = line.strip().partition(" ")
        if kind == "pid":
            processes[int(value)] = _start_time(int(value))
        elif kind == "path":
            paths.append(value)
    for pid, started in processes.items():
        if started is not None and _start_time(pid) == started:  # still that process, not a reused pid
            for kill in (os.kill, os.killpg):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
    for name in namespaces(owner):
        remove_namespace(name)
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _start_time(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


if __name__ == "__main__":
    if sys.argv[1:2] == ["forward"]:
        _forward(sys.argv[2:])
    elif sys.argv[1:2] == ["guard"]:
        _guard_process(int(sys.argv[2]))
    else:
        sys.exit(f"usage: {sys.argv[0]} forward PORT=SOCKET... | guard PID")
