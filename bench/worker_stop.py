"""How long an RQ worker takes to stop at the end of a burst with nothing to do, while other threads of its process
keep the CPU busy (as the test process's cluster runners and proxies do): rq's SimpleWorker, then orgdns's
(orgdns_site/workers.py).

    .venv/bin/python bench/worker_stop.py [--runs 20] [--busy-threads 2]

Uses Redis database 14 (BENCH_REDIS_URL). Prints, for each class, the median and longest stop and how many took over
5 seconds.
"""

import argparse
import logging
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from redis import Redis
from rq import Queue
from rq import SimpleWorker as RqSimpleWorker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orgdns_site.workers import SimpleWorker  # noqa: E402


def busy(stop):
    while not stop.is_set():
        sum(range(10_000))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--busy-threads", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    connection = Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    queue = Queue("bench-worker-stop", connection=connection)
    stop = threading.Event()
    for _ in range(args.busy_threads):
        threading.Thread(target=busy, args=(stop,), daemon=True).start()
    try:
        for worker_class in (RqSimpleWorker, SimpleWorker):
            seconds = []
            for _ in range(args.runs):
                started = time.monotonic()
                worker_class([queue], connection=connection).work(burst=True)
                seconds.append(time.monotonic() - started)
            print(
                f"{worker_class.__module__}.{worker_class.__name__}: {args.runs} bursts, median "
                f"{statistics.median(seconds):.2f} s, longest {max(seconds):.2f} s, "
                f"{sum(s > 5 for s in seconds)} over 5 s, total {sum(seconds):.1f} s"
            )
    finally:
        stop.set()


if __name__ == "__main__":
    main()
