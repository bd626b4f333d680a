"""What a local ExternalDNS pod's network costs (devstack/podnet.py): the time to make and to remove one (network
namespace, veth pair, host route, nftables rule, forwarder), and the time of a request from inside the pod through its
loopback bridge to a server on the machine's loopback, against the same request made on the machine directly.

    sudo .venv/bin/python bench/pod_network.py [--networks 10] [--requests 200]

Needs root (network namespaces), iproute2 and nftables.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack import podnet  # noqa: E402

# A client that makes `count` HTTP requests on one connection each and prints each one's seconds.
CLIENT = """
import http.client, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
for _ in range(count):
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/")
    connection.getresponse().read()
    connection.close()
    print(time.perf_counter() - started)
"""


def milliseconds(values):
    ordered = sorted(values)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


def requests(prefix, port, count):
    done = subprocess.run(
        [*prefix, sys.executable, "-c", CLIENT, str(port), str(count)], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(done.stderr)
    return [float(line) for line in done.stdout.split()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    problem = podnet.available()
    if problem:
        sys.exit(problem)

    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    port = int(server.stdout.readline().split(" port ")[1].split()[0])
    directory, bridges = podnet.bridges([port])
    try:
        made, removed = [], []
        for _ in range(args.networks):
            started = time.perf_counter()
            network = podnet.PodNetwork(directory, [port])
            made.append(time.perf_counter() - started)
            started = time.perf_counter()
            network.close()
            removed.append(time.perf_counter() - started)
        print(f"pod network, {args.networks} times: made in {milliseconds(made)}; removed in {milliseconds(removed)}")

        network = podnet.PodNetwork(directory, [port])
        try:
            bridged = requests(network.exec_prefix(), port, args.requests)
        finally:
            network.close()
        direct = requests([], port, args.requests)
        print(
            f"HTTP request on a new connection, {args.requests} times (a Python http.server on the machine's loopback):"
        )
        print(f"  from inside a pod, through its loopback bridge: {milliseconds(bridged)}")
        print(f"  from the machine itself:                        {milliseconds(direct)}")
    finally:
        for bridge in bridges:
            bridge.stop()
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
