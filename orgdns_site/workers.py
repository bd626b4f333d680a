"""The RQ worker classes orgdns runs (settings.RQ["WORKER_CLASS"]): rq's, stopping without a minute's wait.

rq 3 unsubscribes from the worker's command channel, then stops the thread listening on it; that thread reads with a
60-second timeout. redis-py 8's `PubSubWorkerThread.stop()` waits for the thread to end, and when the thread took the
unsubscribe reply before stop() lowered its flag, it is back in a 60-second read: the worker's shutdown (a SIGTERM, the
end of a burst) then hangs for up to a minute. Busy processes lose that race often. Lowering the flag first means the
unsubscribe reply always ends the thread.
"""

from typing import Any

from rq import SimpleWorker as RqSimpleWorker
from rq import Worker as RqWorker


def unsubscribe_promptly(worker: Any) -> None:
    if worker.pubsub_thread:
        worker.log.info("Worker %s: unsubscribing from channel %s", worker.name, worker.pubsub_channel_name)
        worker.pubsub_thread.stop(timeout=0)  # the flag first, without waiting
        worker.pubsub.unsubscribe()  # its reply wakes the thread, which now ends
        worker.pubsub_thread.join(timeout=1)
        worker.pubsub.close()


class Worker(RqWorker):
    """`orgdns worker` / `manage.py rqworker`: each job in a forked work horse."""

    def unsubscribe(self) -> None:
        unsubscribe_promptly(self)


class SimpleWorker(RqSimpleWorker):
    """Jobs run in the worker's own process (the tests' run_jobs, and a burst run by hand)."""

    def unsubscribe(self) -> None:
        unsubscribe_promptly(self)
