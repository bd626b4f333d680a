"""Hostile shapes of input get a form error naming what is wrong, never a server error, and change nothing."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from provisioning.clients.kube import ClusterConnection
from provisioning.models import Certificate, CertificateInstallation, Cluster, Operation
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import actions as clusters
from tests.conftest import run_jobs
from tests.unit.test_hostile_kubeconfigs import KUBECONFIGS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("text,message", KUBECONFIGS.values(), ids=KUBECONFIGS.keys())
def test_malformed_kubeconfigs_are_form_errors(text, message, client, personas):
    client.force_login(personas.alice)
    upload = SimpleUploadedFile("kubeconfig", text.encode())
    response = client.post(reverse("cluster-register", args=["acme"]), {"name": "edge", "kubeconfig": upload})
    body = response.content.decode()
    assert response.status_code == 200 and ("Cluster connection:" in body or "The submitted file is empty" in body)
    assert not Cluster.objects.exists()


def test_an_api_server_url_too_long_to_keep_is_refused(personas):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="at most 255 are allowed"):
        clusters.register_cluster(
            personas.acme, "edge", ClusterConnection("https://" + "a" * 250 + ".example:6443", "t")
        )
    assert not Cluster.objects.exists()


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease", "external-dns"])
def test_certificates_are_not_installed_into_system_namespaces(namespace, client, personas, cluster_api):
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    certificate, _ = certificates.issue_certificate(personas.acme, ["www.acme.orgdns.test"])
    run_jobs()
    client.force_login(personas.alice)
    issued = client.post(
        reverse("certificate-issue", args=["acme"]),
        {
            "dns_names": "api.acme.orgdns.test",
            "clusters": [cluster.pk],
            "namespace": namespace,
            "secret_name": "api-tls",
        },
    )
    assert issued.status_code == 200 and "belongs to the cluster&#x27;s system" in issued.content.decode()
    installed = client.post(
        reverse("certificate-install", args=["acme", certificate.pk]),
        {"cluster": cluster.pk, "namespace": namespace, "secret_name": "www-tls"},
    )
    assert installed.status_code == 200 and "belongs to the cluster&#x27;s system" in installed.content.decode()
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="application namespace"):
        certificates.install_certificate(certificate, cluster, namespace, "www-tls")
    assert Certificate.objects.count() == 1 and not CertificateInstallation.objects.exists()
    assert not Operation.objects.filter(kind="install_certificate").exists()
    assert cluster_api.objects("secrets", namespace) == [] or namespace == "external-dns"
