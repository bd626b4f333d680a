"""/metrics: refused without the token or an allowed network; parses; its figures move when operations run, also
when a real worker process (forking a work horse per job) runs them."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from provisioning.models import Certificate, Operation
from provisioning.services.clusters import actions as clusters
from provisioning.services.metrics import export as metrics_export
from tests.conftest import run_jobs, start_worker_process, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "metrics-scrape-token"


@pytest.fixture
def scrape(client, settings):
    settings.ORGDNS_METRICS_TOKEN = TOKEN

    def scrape():
        response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    return scrape


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_scrape_without_the_token_or_from_elsewhere_is_refused(client, settings):
    settings.ORGDNS_METRICS_TOKEN, settings.ORGDNS_METRICS_NETWORKS = "", []
    assert client.get("/metrics").status_code == 403  # nothing configured: nobody scrapes
    settings.ORGDNS_METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    settings.ORGDNS_METRICS_TOKEN, settings.ORGDNS_METRICS_NETWORKS = "", ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 403  # the test client comes from 127.0.0.1
    settings.ORGDNS_METRICS_NETWORKS = ["10.0.0.0/8", "127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200


def test_a_session_is_not_enough(client, personas, settings):
    settings.ORGDNS_METRICS_TOKEN, settings.ORGDNS_METRICS_NETWORKS = TOKEN, []
    client.force_login(personas.sam)
    assert client.get("/metrics").status_code == 401


def test_figures_move_when_an_operation_runs(scrape, personas, cluster_api, aws_faults):
    before = scrape()
    aws_faults.error("route53", "CreateHostedZone", "Throttling", times=2)
    clusters.register_cluster(personas.acme, "prod", cluster_api.connection, personas.alice)
    after_queueing = scrape()
    run_jobs()
    after = scrape()

    assert value(after_queueing, "orgdns_operations", kind="register", state="queued") == 1
    assert value(after, "orgdns_operations", kind="register", state="queued") == 0
    assert value(after, "orgdns_operations", kind="register", state="succeeded") == 1
    assert value(after, "orgdns_clusters", state="ready") == 1
    assert value(after, "orgdns_hosted_zones", state="active", gc_decision="keep") == 1
    assert 0 <= value(after, "orgdns_access_key_age_seconds", organization="acme") < 60

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("orgdns_job_duration_seconds_count", kind="register", outcome="succeeded") == 1
    assert moved("orgdns_job_duration_seconds_sum", kind="register", outcome="succeeded") > 0
    assert moved("orgdns_remote_calls_total", service="route53", operation="CreateHostedZone") == 3  # 2 throttled
    assert moved("orgdns_remote_throttles_total", service="route53", operation="CreateHostedZone") == 2
    assert moved("orgdns_remote_calls_total", service="iam", operation="CreateAccessKey") == 1
    assert moved("orgdns_remote_calls_total", service="kubernetes", operation="POST") >= 1
    assert moved("orgdns_remote_calls_total", service="vault", operation="write") >= 1


def test_certificate_expiry_and_zone_gc_decisions(scrape, personas):
    not_after = timezone.now().replace(microsecond=0) + timedelta(days=30)
    certificate = Certificate.objects.create(
        organization=personas.acme,
        dns_names=["app.acme.orgdns.test"],
        state="active",
        not_before=not_after - timedelta(days=90),
        not_after=not_after,
    )
    personas.acme.zones.create(
        name="acme.orgdns.test", state="active", zone_id="ZACME", aws_created_at=timezone.now() - timedelta(days=40)
    )
    samples = scrape()
    labels = {"organization": "acme", "certificate": str(certificate.pk), "dns_name": "app.acme.orgdns.test"}
    assert value(samples, "orgdns_certificate_expiry_timestamp_seconds", **labels) == not_after.timestamp()
    assert value(samples, "orgdns_hosted_zones", state="active", gc_decision="scheduled") == 1  # unused, month paid
    assert value(samples, "orgdns_hosted_zones", state="deleted", gc_decision="none") == 0


def test_a_worker_process_jobs_are_counted(scrape, personas, cluster_api):
    before = scrape()
    worker = start_worker_process()
    try:
        cluster, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.connection, personas.alice)
        wait_until(lambda: Operation.objects.get(pk=operation.pk).finished)
    finally:
        worker.terminate()
        worker.wait(10)
    after = scrape()

    counted = "orgdns_job_duration_seconds_count"
    assert (
        value(after, counted, kind="register", outcome="succeeded")
        - value(before, counted, kind="register", outcome="succeeded")
        == 1
    )
    calls = "orgdns_remote_calls_total"
    assert value(after, calls, service="route53", operation="CreateHostedZone") > value(
        before, calls, service="route53", operation="CreateHostedZone"
    )
    files = os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert not [f for f in files if f.endswith(f"_{worker.pid}.db")], "the ended worker's files are folded"
    counted_again = {key: v for key, v in scrape().items() if key[0] != "orgdns_access_key_age_seconds"}
    assert counted_again == {
        key: v for key, v in after.items() if key[0] != "orgdns_access_key_age_seconds"
    }  # nothing lost or doubled


def test_ended_processes_are_folded_without_losing_counts(scrape, settings):
    counting = (
        "from provisioning.services.metrics import counters as metrics; "
        "metrics.REMOTE_CALLS.labels('route53', 'Folded').inc(3); metrics.JOB_DURATION.labels('register', 'folded').observe(2)"
    )
    for _ in range(3):
        subprocess.run([sys.executable, "-c", counting], check=True, cwd=django_settings.BASE_DIR, env=os.environ)
    first, second = scrape(), scrape()
    assert value(first, "orgdns_remote_calls_total", service="route53", operation="Folded") == 9
    assert value(first, "orgdns_job_duration_seconds_bucket", kind="register", outcome="folded", le="2.0") == 3
    assert first == second
    assert metrics_export.fold_ended_processes(os.environ["PROMETHEUS_MULTIPROC_DIR"]) == 0
