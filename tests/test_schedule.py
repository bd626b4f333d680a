"""The periodic work (orgdns_site/schedule.py): queued once per tick however many schedulers run, run by the real
RQ worker on the real Redis; `orgdns scheduler` and `orgdns worker` stop cleanly on SIGTERM."""

import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import django_rq
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from rq.job import Job

from orgdns_site import schedule
from provisioning.models import Cluster
from tests.conftest import manage_env, start_worker_process, wait_until
from tests.factories import register


def due_now(scheduler, tick):
    for job in scheduler.get_jobs():
        job.next_enqueue_time = tick


def queued(queue):
    return sorted(tuple(job.args) for job in queue.get_jobs())


def test_every_cron_line_of_the_docs_is_on_the_schedule():
    commands = {periodic.command: periodic for periodic in schedule.SCHEDULE}
    assert set(commands) == {
        "sweep_operations",
        "check_externaldns",
        "gc_hosted_zones",
        "rerender_externaldns",
        "rotate_credentials",
        "reconcile",
        "renew_certificates",
        "prune",
    }
    assert commands["reconcile"].arguments(dry_run=False) == ("--apply",)


def test_two_schedulers_at_once_queue_each_due_command_once():
    connection = django_rq.get_connection("default")
    queue = django_rq.get_queue(schedule.QUEUE)
    first, second = schedule.scheduler(connection, name="one"), schedule.scheduler(connection, name="two")
    tick = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    for _ in range(2):  # this tick, then the next one
        due_now(first, tick)
        due_now(second, tick)
        start = threading.Barrier(2)
        enqueued = {}

        def run(scheduler, start=start, enqueued=enqueued):
            start.wait()
            enqueued[scheduler.name] = scheduler.enqueue_jobs()

        threads = [threading.Thread(target=run, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(enqueued["one"]) + len(enqueued["two"]) == len(schedule.SCHEDULE)
        tick += timedelta(minutes=1)
    assert queued(queue) == sorted([(entry[0], *entry[2]) for entry in schedule.entries()] * 2)
    # each scheduler moved on to the command's next tick, in the future
    assert all(job.next_enqueue_time > datetime.now(UTC) for job in first.get_jobs() + second.get_jobs())


def test_settings_turn_commands_off_or_into_dry_runs(settings):
    settings.ORGDNS_SCHEDULE_OFF = ["rotate_credentials"]
    settings.ORGDNS_SCHEDULE_DRY_RUN = ["gc_hosted_zones", "reconcile"]
    entries = {command: arguments for command, _, arguments, _ in schedule.entries()}
    assert "rotate_credentials" not in entries
    assert entries["gc_hosted_zones"] == ("--dry-run",)
    assert entries["reconcile"] == ()  # reconcile's dry run is itself without --apply
    assert entries["renew_certificates"] == ()
    settings.ORGDNS_SCHEDULE_OFF = ["rotate_credential"]
    with pytest.raises(ImproperlyConfigured, match="ORGDNS_SCHEDULE_OFF: rotate_credential is not on the schedule"):
        schedule.entries()


@pytest.mark.django_db(transaction=True)
def test_a_due_command_runs_on_a_worker():
    connection = django_rq.get_connection("default")
    scheduler = schedule.scheduler(connection, name="one")
    (sweep,) = [job for job in scheduler.get_jobs() if job.name == "orgdns:sweep_operations"]
    scheduler._cron_jobs = [sweep]
    due_now(scheduler, datetime.now(UTC).replace(second=0, microsecond=0))
    assert scheduler.enqueue_jobs() == [sweep]
    (job,) = django_rq.get_queue(schedule.QUEUE).get_jobs()
    worker = start_worker_process("--burst")
    worker.wait(120)
    job = Job.fetch(job.id, connection=connection)
    assert job.get_status() == "finished"
    assert "0 queued again, 0 failed (operations no job was finishing)." in job.return_value()


@pytest.mark.django_db(transaction=True)
def test_the_scheduled_health_check_runs_on_a_worker_and_the_cluster_page_shows_it(personas, cluster_api, client):
    cluster = register(personas.acme, "prod", cluster_api)
    client.force_login(personas.alice)
    page = reverse("cluster", args=["acme", cluster.pk])
    assert "not checked yet" in client.get(page).content.decode()
    scheduler = schedule.scheduler(django_rq.get_connection("default"), name="one")
    scheduler._cron_jobs = [job for job in scheduler.get_jobs() if job.name == "orgdns:check_externaldns"]
    due_now(scheduler, datetime.now(UTC).replace(second=0, microsecond=0))
    assert len(scheduler.enqueue_jobs()) == 1
    start_worker_process("--burst").wait(180)
    cluster.refresh_from_db()
    assert cluster.externaldns_health == Cluster.Health.OK, cluster.externaldns_problem
    assert cluster.externaldns_checked_at is not None
    assert "not checked yet" not in client.get(page).content.decode()


def test_the_scheduler_process_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "orgdns_site.cli", "scheduler"],
        cwd=settings.BASE_DIR,
        env=manage_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    connection = django_rq.get_connection("default")
    wait_until(lambda: connection.keys("rq:cron_scheduler:*"), timeout=60)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "stop requested" in output and "shutdown complete" in output


@pytest.mark.django_db(transaction=True)
def test_a_worker_told_to_stop_finishes_its_job_first():
    queue = django_rq.get_queue("default")
    job = queue.enqueue("time.sleep", 4)
    worker = subprocess.Popen(
        [sys.executable, "-m", "orgdns_site.cli", "worker"],
        cwd=settings.BASE_DIR,
        env=manage_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: job.get_status(refresh=True) == "started", timeout=60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0
    assert job.get_status(refresh=True) == "finished"
