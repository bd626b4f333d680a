"""RQ entry points: plain functions taking primary keys."""

from .models import Operation
from .services import operations, provisioning

HANDLERS = {
    Operation.Kind.REGISTER: (provisioning.register_cluster, provisioning.mark_register_failed),
    Operation.Kind.DEREGISTER: (provisioning.deregister_cluster, provisioning.mark_deregister_failed),
}


def run_operation(operation_id):
    return operations.run(operation_id, HANDLERS)
