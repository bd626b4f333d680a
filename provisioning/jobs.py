"""What jobs queued by orgdns before operation kinds were classes name (the job's function is stored in Redis as a
dotted path): kept so that an upgrade runs them. orgdns queues provisioning.services.operations.running.run itself
now; remove this module in the release after."""

from provisioning.services.operations.running import job_failed as job_abandoned  # noqa: F401
from provisioning.services.operations.running import run as run_operation  # noqa: F401
