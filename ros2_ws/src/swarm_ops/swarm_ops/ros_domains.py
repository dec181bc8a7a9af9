"""Private ROS 2 domains for tests and benchmarks that share one machine.

Each caller claims a ROS_DOMAIN_ID in 1..200 that no other process here holds,
through a lock file per id, so parallel test runs, benchmarks and a running
fleet never see each other's topics. Closing the returned file (or exiting)
frees the id; `private_domain_environment` is what a process on it needs.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import tempfile
from pathlib import Path
from typing import IO

DOMAIN_LOCKS = Path(tempfile.gettempdir()) / "swarm_ros_domains"
_claims = itertools.count()


def claim_domain_id() -> tuple[int, IO]:
    """A ROS domain in 1..200 that no other process on this machine holds, and its lock."""
    DOMAIN_LOCKS.mkdir(exist_ok=True)
    start = (os.getpid() * 7 + next(_claims) * 23) % 200
    for k in range(200):
        domain = 1 + (start + k) % 200
        handle = open(DOMAIN_LOCKS / f"{domain}.lock", "w")  # noqa: SIM115 - held by the caller
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return domain, handle
    raise RuntimeError(f"all ROS domains 1..200 are held by other runs (locks in {DOMAIN_LOCKS})")


def private_domain_environment(domain: int) -> dict[str, str]:
    """The environment variables that put a process on a claimed domain.

    A claimed id is only free on this machine, so discovery stays on localhost.
    The middleware is the one already chosen, else Fast DDS (what the pip ROS
    wheels ship), so this process and its children always speak the same one;
    its transport is `fast_dds_transport()`'s.
    """
    return {
        "ROS_DOMAIN_ID": str(domain),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "RMW_IMPLEMENTATION": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
        **fast_dds_transport(),
    }


def fast_dds_transport() -> dict[str, str]:
    """Fast DDS over UDP only, unless the user chose its transports.

    Fast DDS's default adds shared memory between processes on one host, and a
    process restarted after a kill -9 (a crashed node that its supervisor
    respawns) can match its peers there and still receive nothing: the dead
    process's shared-memory ports stay behind (eProsima/Fast-DDS issues #2811,
    #5053). We saw it as a respawned policy node with no scan or odometry. UDP
    over loopback costs little at a robot's message rates and has no such state.
    """
    return {"FASTDDS_BUILTIN_TRANSPORTS": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")}
