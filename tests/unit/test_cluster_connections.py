"""A cluster connection, given as fields or as a kubeconfig, is checked before anything is kept: a bad one is refused
with the reason."""

import base64

import pytest
import yaml

from provisioning.clients import tls
from provisioning.clients.kube import ClusterConnection, InvalidConnection, connection_from_kubeconfig


@pytest.mark.parametrize(
    "server,message",
    [
        ("http://10.0.0.1:6443", "must look like https://host"),
        ("ftp://cluster", "must look like https://host"),
        ("https://", "must look like https://host"),
        ("https://user:pw@cluster:6443", "without path, query or credentials"),
        ("https://cluster:6443/api?x=1", "without path, query or credentials"),
    ],
)
def test_malformed_endpoints_are_refused(server, message):
    with pytest.raises(InvalidConnection, match=message):
        ClusterConnection(server=server, token="t")


CA_PEM = tls.make_ca("k8s.example", "k8s", 1).certificate


def kubeconfig(**changes):
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://k8s.example:6443",
                    "certificate-authority-data": base64.b64encode(CA_PEM.encode()).decode(),
                },
            }
        ],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
    }
    for path, value in changes.items():
        node = config
        *parents, last = path.split("__")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return yaml.safe_dump(config)


def test_a_usable_kubeconfig_gives_its_connection():
    connection = connection_from_kubeconfig(kubeconfig())
    assert connection.server == "https://k8s.example:6443"
    assert connection.token == "secret-token"
    assert connection.ca_pem.startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize(
    "text,message",
    [
        ("::: not yaml", "not valid YAML|no contexts"),
        (kubeconfig(contexts=[]), "no contexts"),
        (kubeconfig(**{"current-context": "other"}), "no context named 'other'"),
        (
            kubeconfig(
                **{"current-context": None, "contexts": [{"name": "a", "context": {}}, {"name": "b", "context": {}}]}
            ),
            "2 contexts and no current-context",
        ),
        (kubeconfig(users__0__user={"exec": {"command": "aws"}}), "credential plugin"),
        (kubeconfig(users__0__user={"client-certificate-data": "x"}), "only bearer-token users"),
        (
            kubeconfig(clusters__0__cluster={"server": "https://k:6443", "certificate-authority": "/etc/ca.crt"}),
            "CA file",
        ),
        (
            kubeconfig(clusters__0__cluster={"server": "https://k:6443", "insecure-skip-tls-verify": True}),
            "insecure-skip-tls-verify",
        ),
        (kubeconfig(clusters__0__cluster={"certificate-authority-data": "eA=="}), "no cluster with a server URL"),
        (
            kubeconfig(clusters__0__cluster={"server": "https://k:6443", "certificate-authority-data": "%%%"}),
            "not base64",
        ),
    ],
)
def test_unusable_kubeconfigs_are_refused_with_the_reason(text, message):
    with pytest.raises(InvalidConnection, match=message):
        connection_from_kubeconfig(text)
