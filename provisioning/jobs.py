"""RQ entry points: plain functions taking primary keys."""

from rq.exceptions import AbandonedJobError

from .models import Operation
from .services import certificate_jobs, key_rotation, operations, provisioning, route53_budget, teardown, zone_gc

HANDLERS = {
    Operation.Kind.REGISTER: (provisioning.register_cluster, provisioning.mark_register_failed),
    Operation.Kind.DEREGISTER: (teardown.deregister_cluster, provisioning.mark_deregister_failed),
    Operation.Kind.DELETE_ZONE: (zone_gc.delete_zone, zone_gc.mark_teardown_failed),
    Operation.Kind.ISSUE_CERTIFICATE: (certificate_jobs.issue_and_install, certificate_jobs.mark_failed),
    Operation.Kind.RENEW_CERTIFICATE: (certificate_jobs.issue_and_install, certificate_jobs.mark_failed),
    Operation.Kind.INSTALL_CERTIFICATE: (certificate_jobs.install, certificate_jobs.mark_failed),
    Operation.Kind.DELETE_CERTIFICATE: (certificate_jobs.delete, certificate_jobs.mark_delete_failed),
    Operation.Kind.RERENDER_EXTERNALDNS: (route53_budget.rerender_externaldns, provisioning.mark_register_failed),
    Operation.Kind.ROTATE_CREDENTIALS: (key_rotation.rotate_credentials, key_rotation.mark_rotation_failed),
    Operation.Kind.OFFBOARD: (teardown.offboard, teardown.offboard_failed),
}


def run_operation(operation_id):
    return operations.run(operation_id, HANDLERS)


def job_abandoned(job, connection, exc_type, exc_value, traceback):
    """RQ's failure callback. Failures raised by run_operation are recorded by it already; this handles the job
    whose worker died, which RQ finds abandoned later."""
    if issubclass(exc_type, AbandonedJobError):
        operations.abandoned(job.id, will_retry=bool(job.retries_left), handlers=HANDLERS)
