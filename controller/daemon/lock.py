"""The one-shot's lock: `reconcile --lease-table` holds the daemon's lease while it observes, plans and writes.

It is the same DynamoDB item as `run --lease-table` (one per owner id), so two CI pipelines, or a
pipeline and the daemon, never write the same owner's objects at once. The plan is made under the lock:
a run that waited plans against what the one before it wrote, and finds nothing left to do. A run that
could not get the lock within ``wait`` seconds writes nothing and says who holds it. While it is held
the lease's write guard covers every write attempt, as in the daemon; it is released at the end, so the
next run need not wait for it to expire.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator

from controller.aws.session import Aws
from controller.daemon.lease import Lease, lease_aws, lease_name
from controller.vocab.problems import ControllerError

log = logging.getLogger("ecs_secrets.lock")
POLL = 0.1


@contextmanager
def held(aws: Aws, table: str, owner: str, profile: str | None = None, wait: float = 60.0,
         say=lambda line: None) -> Iterator[Lease]:
    """Hold the owner's lease for the block; ``say``: one line for the user while waiting."""
    lease = Lease(lease_aws(aws, profile), table, lease_name(owner))
    lease.start()
    try:
        _acquire(lease, wait, say)
        aws.set_guard(lease.guard())
        yield lease
    finally:
        lease.stop()   # releases the lease when we hold it


def _acquire(lease: Lease, wait: float, say) -> None:
    lease.first_round.wait(lease.retry_period + 10)
    deadline, told = time.monotonic() + wait, False
    while not lease.is_leader():
        holder = lease.holder_seen()
        if time.monotonic() >= deadline:
            raise ControllerError(
                f"the lease {lease.table}/{lease.name} is held by {holder or 'another writer'}: another "
                f"`reconcile` or `run` of the same owner is writing; nothing written (waited {wait:g}s, "
                f"--lock-timeout)")
        if holder and not told:
            say(f"waiting up to {wait:g}s for the lease {lease.table}/{lease.name}, held by {holder}")
            told = True
        time.sleep(POLL)
    log.info("holding the lease %s/%s (fence %d)", lease.table, lease.name, lease.fence)
