"""The RQ worker classes orgdns runs (settings.RQ["WORKER_CLASS"]): rq's, stopping without a minute's wait.

rq 3 unsubscribes from the worker's command channel, then stops the thread listening on it; that thread reads with a
60-second timeout. redis-py 8's `PubSubWorkerThread.stop()` waits for the thread to end, and when the thread took the
unsubscribe reply before stop() lowered its flag, it is back in a 60-second read: the worker's shutdown (a SIGTERM, the
end of a burst) then hangs for up to a minute. Busy processes lose that race often. Lowering the flag first means the
unsubscribe reply always ends the thread.
"""

from rq import SimpleWorker as RqSimpleWorker
from rq import Worker as RqWorker


class PromptUnsubscribe:
    pubsub = None
    pubsub_thread = None

    def unsubscribe(self):
        if self.pubsub_thread:
            self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
            self.pubsub_thread.stop(timeout=0)  # the flag first, without waiting
            self.pubsub.unsubscribe()  # its reply wakes the thread, which now ends
            self.pubsub_thread.join(timeout=1)
            self.pubsub.close()


class Worker(PromptUnsubscribe, RqWorker):
    """`orgdns worker` / `manage.py rqworker`: each job in a forked work horse."""


class SimpleWorker(PromptUnsubscribe, RqSimpleWorker):
    """Jobs run in the worker's own process (the tests' run_jobs, and a burst run by hand)."""
