"""Hostile shapes of kubeconfig are refused naming what is wrong, never with a crash."""

import base64

import pytest
import yaml

from provisioning.clients.kube import ClusterConnection, InvalidConnection, connection_from_kubeconfig
from tests.unit.test_cluster_connections import CA_PEM


def kubeconfig(cluster=None, user=None, context=None, **top):
    config = {
        "current-context": "main",
        "contexts": [{"name": "main", "context": context if context is not None else {"cluster": "c", "user": "u"}}],
        "clusters": [
            {"name": "c", "cluster": cluster if cluster is not None else {"server": "https://k8s.example:6443"}}
        ],
        "users": [{"name": "u", "user": user if user is not None else {"token": "t"}}],
    }
    config.update(top)
    return yaml.safe_dump(config)


def merge_key_bomb(levels):
    """About 700 bytes of YAML in which each level merges the one below eight times."""
    lines = ["l0: &l0 {k: v}"]
    lines += [f"l{i}: &l{i} {{<<: [{', '.join([f'*l{i - 1}'] * 8)}]}}" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n" + kubeconfig()


def b64(data):
    return base64.b64encode(data).decode()


KUBECONFIGS = {
    "a list": ("- a\n- b\n", "not a mapping"),
    "a string": ("just text\n", "not a mapping"),
    "a number": ("42\n", "not a mapping"),
    "empty": ("", "not a mapping"),
    "deeply nested": ("[" * 5000 + "]" * 5000, "not valid YAML"),
    "python tag": ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    "contexts not a list": (kubeconfig(contexts="main"), "contexts in the kubeconfig must be a list"),
    "a context entry that is text": (kubeconfig(contexts=["main"]), "every entry of contexts"),
    "an entry without a name": (
        kubeconfig(clusters=[{"cluster": {"server": "https://k:1"}}]),
        "every entry of clusters",
    ),
    "a context that is text": (kubeconfig(context="c"), "the context of 'main' must be a mapping"),
    "users a mapping": (kubeconfig(users={"u": {"token": "t"}}), "users in the kubeconfig must be a list"),
    "no clusters": (kubeconfig(clusters=None), "names no cluster with a server URL"),
    "a context pointing nowhere": (kubeconfig(context={"cluster": "nope", "user": "u"}), "names no cluster"),
    "a context naming a list": (kubeconfig(context={"cluster": ["c"], "user": "u"}), "names no cluster"),
    "current-context a list": (kubeconfig(**{"current-context": ["main"]}), "current-context must be the name"),
    "server a number": (kubeconfig(cluster={"server": 6443}), "names no cluster with a server URL"),
    "token a mapping": (kubeconfig(user={"token": {"a": "b"}}), "is not text"),
    "CA data a number": (
        kubeconfig(cluster={"server": "https://k:1", "certificate-authority-data": 12345}),
        "not base64",
    ),
    "CA data not base64": (
        kubeconfig(cluster={"server": "https://k:1", "certificate-authority-data": "%%%"}),
        "not base64",
    ),
    "CA data not UTF-8": (
        kubeconfig(cluster={"server": "https://k:1", "certificate-authority-data": b64(b"\xff\xfe")}),
        "not base64",
    ),
    "CA data not a certificate": (
        kubeconfig(
            cluster={"server": "https://k:1", "certificate-authority-data": b64(b"-----BEGIN CERTIFICATE-----\nx\n")}
        ),
        "must be PEM",
    ),
    "server an unclosed IPv6 literal": (kubeconfig(cluster={"server": "https://[::1"}), "must look like https://host"),
    "server with a port out of range": (
        kubeconfig(cluster={"server": "https://k:99999"}),
        "must look like https://host",
    ),
    "token with a newline": (kubeconfig(user={"token": "abc\nHost: evil"}), "printable ASCII"),
    "token not ASCII": (kubeconfig(user={"token": "tökén"}), "printable ASCII"),
    "token with a trailing newline": (kubeconfig(user={"token": "abc\n"}), "printable ASCII"),
    "server with a trailing newline": (kubeconfig(cluster={"server": "https://k8s.example\n"}), "printable ASCII"),
    "server with a newline in its name": (
        kubeconfig(cluster={"server": "https://k8s\n.example:6443"}),
        "printable ASCII",
    ),
    "merge keys standing for a huge document": (merge_key_bomb(levels=12), "more than 32 YAML aliases"),
}


@pytest.mark.parametrize("text,message", KUBECONFIGS.values(), ids=KUBECONFIGS.keys())
def test_malformed_kubeconfigs_are_refused_with_the_reason(text, message):
    with pytest.raises(InvalidConnection, match=message):
        connection_from_kubeconfig(text)


def test_the_merge_key_bomb_is_small():
    assert len(merge_key_bomb(levels=12).encode()) < 1000


def test_a_few_aliases_are_fine():
    text = kubeconfig(users=[{"name": "u", "user": {"token": "t"}}]).replace("user:\n", "user: &shared\n")
    text += "extensions:\n- *shared\n- *shared\n"
    assert connection_from_kubeconfig(text).token == "t"


def test_a_usable_kubeconfig_still_works():
    text = kubeconfig(
        cluster={"server": "https://k8s.example:6443", "certificate-authority-data": b64(CA_PEM.encode())}
    )
    assert connection_from_kubeconfig(text) == ClusterConnection("https://k8s.example:6443", "t", CA_PEM)
