"""The curl examples of docs/api.md work as written: register a cluster from a CI job and wait for it, then issue a
certificate, against a live server and a real worker process."""

import base64
import re
import shutil
import subprocess

import pytest
import yaml
from django.conf import settings

from provisioning.models import Certificate, Cluster
from provisioning.services.people import api_tokens
from tests.conftest import start_worker_process

pytestmark = pytest.mark.django_db(transaction=True)


def readme_api_examples():
    page = (settings.BASE_DIR / "docs" / "api.md").read_text()
    return [block for block in re.findall(r"```sh\n(.*?)```", page, re.S) if "/api/v1/" in block]


@pytest.fixture
def worker(transactional_db):
    process = start_worker_process()
    yield process
    process.terminate()
    process.wait(10)


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq") and shutil.which("openssl")), reason="needs curl, jq and openssl"
)
def test_the_readme_curl_examples_run(live_server, worker, personas, cluster_api, tmp_path):
    examples = readme_api_examples()
    assert len(examples) == 2
    cluster_api.allow_certificates("web")  # the tenant's RoleBinding, as the example's text says
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "current-context": "ci",
                "contexts": [{"name": "ci", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": cluster_api.url,
                            "certificate-authority-data": base64.b64encode(cluster_api.ca_pem.encode()).decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": cluster_api.token}}],
            }
        )
    )
    _, token = api_tokens.create_token(personas.alice, "ci", 1)
    env = {
        "PATH": "/usr/bin:/bin",
        "ORGDNS_URL": live_server.url,
        "ORGDNS_TOKEN": token,
        "ORG": "acme",
        "CLUSTER_NAME": "ci-edge",
        "KUBECONFIG": str(kubeconfig),
        "BASE_DOMAIN": settings.ORGDNS_BASE_DOMAIN,
    }
    script = "set -euo pipefail\n" + "\n".join(examples)
    run = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "succeeded" in run.stdout and "tls.crt: OK" in run.stdout
    assert Cluster.objects.get(name="ci-edge").state == Cluster.State.READY
    certificate = Certificate.objects.get()
    assert certificate.state == Certificate.State.ACTIVE
    assert certificate.installations.get().state == "installed"
    assert cluster_api.token not in run.stdout + run.stderr
