"""What the devstack starts dies with it: a start that fails stops what it started, and a devstack process killed
hard (SIGKILL, the OOM killer) takes its children with it."""

import os
import signal
import subprocess
import sys

import pytest
from django.conf import settings

from devstack.cluster import Etcd, LocalCluster
from tests.conftest import wait_until


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie (exited, not yet reaped) is dead too
        return stat.read().split(")")[-1].split()[0] != "Z"


class ClusterFailingAtBootstrap(LocalCluster):
    """A cluster whose start fails after its four processes run (as it did when its readiness check refused the API
    server's certificate)."""

    def _bootstrap(self):
        raise RuntimeError("bootstrap failed")


@pytest.mark.integration
def test_a_cluster_start_that_fails_stops_the_processes_it_started(tmp_path):
    etcd = Etcd(tmp_path, open(tmp_path / "etcd.log", "w"))
    try:
        cluster = ClusterFailingAtBootstrap("failing", etcd, tmp_path)
        started = []
        spawn = cluster._spawn

        def spawn_and_remember(component, command):
            process = spawn(component, command)
            started.append(process)
            return process

        cluster._spawn = spawn_and_remember
        with pytest.raises(RuntimeError, match="bootstrap failed"):
            cluster.start()
        assert len(started) == 4  # kube-apiserver, kube-controller-manager, kube-scheduler, kwok
        assert all(process.poll() is not None for process in started)
        assert cluster.processes == []
    finally:
        etcd.stop()


@pytest.mark.integration
def test_children_of_a_devstack_process_killed_hard_die_with_it():
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from devstack.processes import free_port, start_moto, start_bao\n"
            "moto, _ = start_moto(free_port()); bao, _ = start_bao(free_port(), 'token')\n"
            "print(moto.pid, bao.pid, flush=True); time.sleep(600)",
        ],
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    children = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(children) == 2 and all(alive(pid) for pid in children)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=10)
