"""The periodic work, declared once: what runs when. `orgdns scheduler` queues each command on RQ as it falls due and
the workers run it (docs/schedule.md; the cron lines there are the alternative, without a scheduler).

The scheduler is RQ's own (rq.cron, in the rq that django-rq already installs): nothing more to run or to keep
up to date. Several schedulers may run at once (two replicas, a rolling update): before queueing a due command each
claims that command's tick in Redis (SET NX), so a tick is queued once whoever claims it first.
"""

import io
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rq.cron import CronScheduler
from rq.utils import now

QUEUE = "default"
CLAIM_SECONDS = 3600  # far longer than schedulers' clocks and ticks can drift apart
OUTPUT_KEPT = 20_000  # characters of a command's output kept as its job's result


@dataclass(frozen=True)
class Periodic:
    command: str
    cron: str  # minute hour day month weekday, in the scheduler's local time (UTC in the image)
    apply: tuple[str, ...] = ()  # arguments of a real run
    dry_run: tuple[str, ...] = ("--dry-run",)  # arguments instead, for the commands in ORGDNS_SCHEDULE_DRY_RUN
    timeout: int = 900  # seconds the job may take

    def arguments(self, dry_run):
        return self.dry_run if dry_run else self.apply


SCHEDULE = (
    Periodic("sweep_operations", "* * * * *", dry_run=()),  # no dry run: it only queues again or fails stuck ones
    Periodic("check_externaldns", "*/2 * * * *", dry_run=()),  # reads only
    Periodic("gc_hosted_zones", "*/5 * * * *", timeout=3600),  # month end: 500 zones take about 14 minutes
    Periodic("rerender_externaldns", "*/5 * * * *"),
    Periodic("rotate_credentials", "43 * * * *"),
    Periodic("reconcile", "43 * * * *", apply=("--apply",), dry_run=()),  # without --apply it only reports
    Periodic("renew_certificates", "17 3 * * *"),
    Periodic("prune", "29 4 * * *"),  # retention (provisioning/services/operations/retention.py)
)


def entries():
    """The schedule as settings shape it: without ORGDNS_SCHEDULE_OFF's commands, with ORGDNS_SCHEDULE_DRY_RUN's as
    dry runs. (command, cron, arguments, timeout) each."""
    known = {periodic.command for periodic in SCHEDULE}
    for name in ("ORGDNS_SCHEDULE_OFF", "ORGDNS_SCHEDULE_DRY_RUN"):
        unknown = sorted(set(getattr(settings, name)) - known)
        if unknown:
            raise ImproperlyConfigured(
                f"{name}: {', '.join(unknown)} is not on the schedule (it has {', '.join(sorted(known))})"
            )
    dry_runs = settings.ORGDNS_SCHEDULE_DRY_RUN
    return [
        (periodic.command, periodic.cron, periodic.arguments(periodic.command in dry_runs), periodic.timeout)
        for periodic in SCHEDULE
        if periodic.command not in settings.ORGDNS_SCHEDULE_OFF
    ]


def run_command(command, *arguments):
    """The job a tick queues: the management command, its output logged and kept as the job's result."""
    from django.core.management import call_command

    output = io.StringIO()
    try:
        call_command(command, *arguments, stdout=output)
    finally:
        text = output.getvalue()
        logging.getLogger("orgdns.schedule").info("%s %s\n%s", command, " ".join(arguments), text.rstrip())
    return text[-OUTPUT_KEPT:]


class ClaimingCronScheduler(CronScheduler):
    """rq's CronScheduler, except that a due job is queued only by the scheduler that claims its tick."""

    def enqueue_jobs(self):
        enqueue_time = now()
        enqueued = []
        for job in self._cron_jobs:
            if job.should_run():
                if self.claim(job):
                    job.enqueue(self.connection)
                    enqueued.append(job)
                job.set_enqueue_time(enqueue_time)
        return enqueued

    def claim(self, job):
        tick = job.next_enqueue_time  # a cron tick: the same in every scheduler
        key = f"orgdns:schedule:{job.name}:{tick:%Y-%m-%dT%H:%M}"
        return bool(self.connection.set(key, self.name, nx=True, ex=CLAIM_SECONDS))


def scheduler(connection, name=""):
    scheduler = ClaimingCronScheduler(connection, name=name)
    for command, cron, arguments, timeout in entries():
        scheduler.register(
            run_command,
            QUEUE,
            args=(command, *arguments),
            cron=cron,
            job_timeout=timeout,
            name=f"orgdns:{command}",
        )
    return scheduler


def run():
    """`orgdns scheduler`: until SIGTERM or SIGINT."""
    import django_rq

    scheduler(django_rq.get_connection(QUEUE)).start()
