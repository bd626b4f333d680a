"""RQ entry points: plain functions taking primary keys. Importing this module declares every operation kind."""

from rq.exceptions import AbandonedJobError

from provisioning.services.certificates import jobs as certificate_jobs  # noqa: F401  (each declares its operation kinds)
from provisioning.services.clusters import jobs as cluster_jobs  # noqa: F401
from provisioning.services.credentials import jobs as credential_jobs  # noqa: F401
from provisioning.services.operations import running as operations
from provisioning.services.organizations import offboarding_jobs  # noqa: F401
from provisioning.services.zones import jobs as zone_jobs  # noqa: F401


def run_operation(operation_id):
    return operations.run(operation_id)


def job_abandoned(job, connection, exc_type, exc_value, traceback):
    """RQ's failure callback. Failures raised by run_operation are recorded by it already; this handles the job
    whose worker died, which RQ finds abandoned later."""
    if issubclass(exc_type, AbandonedJobError):
        operations.abandoned(job.id, will_retry=bool(job.retries_left))
