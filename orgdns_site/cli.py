"""`orgdns`: the command of an installed orgdns (docs/running.md).

orgdns web          the dashboard, the API, /healthz, /readyz and /metrics (gunicorn) on ORGDNS_WEB_BIND
orgdns worker       an RQ worker of orgdns's queues (SIGTERM: it finishes its job, then exits)
orgdns scheduler    queues the periodic work (orgdns_site/schedule.py) as it falls due
orgdns COMMAND      any management command: migrate, createsuperuser, collectstatic, gc_hosted_zones, prune, …
"""

import os
import sys

PROCESSES = ("web", "worker", "scheduler")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orgdns_site.settings")
    metrics_directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if metrics_directory:  # on a tmpfs (the image's /tmp), it does not exist when the container starts
        os.makedirs(metrics_directory, exist_ok=True)
    command = argv[0] if argv else "help"
    if command in PROCESSES:
        import django

        django.setup()
        return {"web": web, "worker": worker, "scheduler": scheduler}[command](argv[1:])
    if command in ("help", "--help", "-h") and len(argv) <= 1:
        print(__doc__.split("\n", 2)[2].rstrip() + "\n")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["orgdns", *argv])
    return None


def web(args):
    """gunicorn, with the app loaded once before its workers fork. SIGTERM: it stops accepting, lets requests under way
    finish for ORGDNS_WEB_GRACEFUL_TIMEOUT seconds, then exits."""
    from django.conf import settings
    from gunicorn.app.base import BaseApplication

    if args:
        sys.exit(f"orgdns web takes no arguments (settings come from the environment), not {' '.join(args)}")
    collect_static_files_once(settings)
    options = {
        "bind": [settings.ORGDNS_WEB_BIND],
        "workers": settings.ORGDNS_WEB_WORKERS,
        "threads": settings.ORGDNS_WEB_THREADS,
        "worker_class": "gthread",
        "timeout": settings.ORGDNS_WEB_TIMEOUT,
        "graceful_timeout": settings.ORGDNS_WEB_GRACEFUL_TIMEOUT,
        "preload_app": True,
        "accesslog": "-",
        "errorlog": "-",
        "child_exit": forget_metrics_of_exited_worker,
        "proc_name": "orgdns-web",
    }
    if os.path.isdir("/dev/shm"):
        options["worker_tmp_dir"] = "/dev/shm"  # heartbeat files; the root filesystem may be read-only

    class WebServer(BaseApplication):
        def load_config(self):
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self):
            from orgdns_site.wsgi import application

            return application

    WebServer().run()


def collect_static_files_once(settings):
    """Static files are served under content-hashed names from STATIC_ROOT's manifest: collect them if they never
    were (an image collects them when it is built; after an upgrade of a pip install, run `orgdns collectstatic`)."""
    from django.core.management import call_command

    if not (settings.STATIC_ROOT / "staticfiles.json").exists():
        print(f"orgdns web: collecting static files into {settings.STATIC_ROOT}", file=sys.stderr, flush=True)
        call_command("collectstatic", interactive=False, verbosity=0)


def forget_metrics_of_exited_worker(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def worker(args):
    """`manage.py rqworker --with-scheduler` on every queue of settings.RQ_QUEUES; with arguments, rqworker's
    (`orgdns worker --burst default`). SIGTERM is RQ's warm shutdown: the job under way
    finishes, then the worker exits; killed before (a second signal, SIGKILL), the job's heartbeat stops and the
    sweep runs the operation again."""
    from django.conf import settings
    from django.core.management import call_command

    call_command("rqworker", "--with-scheduler", *(args or settings.RQ_QUEUES))


def scheduler(args):
    from orgdns_site import schedule

    if args:
        sys.exit(f"orgdns scheduler takes no arguments (the schedule is orgdns_site/schedule.py), not {' '.join(args)}")
    schedule.run()


if __name__ == "__main__":
    main()
