"""Node processes: a fleet `NodeSpec` started as `python -m <module> --ros-args ...`, and stopped.

The one way node processes are started, for `swarm deploy` (which supervises
them), the demo, the node benchmark and the tests: the command line is the
spec's own (`NodeSpec.command`, the launch files' decision), run by this
interpreter, where the installed packages are; the environment comes from
`node_environment`; each node appends to its own log file. A node runs in a
session of its own, so a terminal's Ctrl-C reaches only its starter, which
stops the nodes in order; and it gets SIGTERM if its starter dies, so no node
outlives the process that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from swarm_controller.fleet import NodeSpec
from swarm_ops.ros_domains import fast_dds_transport, private_domain_environment


def node_environment(
    *, domain: int | None = None, log_dir: Path | None = None, ros_home: Path | None = None
) -> dict[str, str]:
    """This process's environment, fitted for node processes.

    `domain`: a ROS domain claimed with `ros_domains.claim_domain_id` (else the
    inherited ROS_DOMAIN_ID). `log_dir`: where ROS file logs go unless
    ROS_LOG_DIR is set (else ~/.ros/log). `ros_home`: the nodes' ROS_HOME
    (else the inherited one, ~/.ros by default), where a policy node keeps the
    live-policy record a respawn resumes from. Output is unbuffered, so log
    files show lines as they happen, not when a buffer fills. Fast DDS speaks
    UDP only unless the user chose (`ros_domains.fast_dds_transport`): a node
    respawned after a crash must hear its sensors.
    """
    env = dict(os.environ)
    env.update(fast_dds_transport())
    if domain is not None:
        env.update(private_domain_environment(domain))
    if log_dir is not None:
        env.setdefault("ROS_LOG_DIR", str(log_dir))
    if ros_home is not None:
        env["ROS_HOME"] = str(ros_home)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")
    return env


def _find_prctl():
    """libc's prctl, looked up here in the parent: a child forked from a process with
    running threads (a spinning ROS node) must make only the C call before exec,
    never an import or a library load that could wait on a lock held at the fork."""
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    return None


_PRCTL = _find_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the starting thread dies, so no node outlives it."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class NodeLauncher:
    """Starts node specs as child processes with one environment, a log per node in `log_dir`.

    `env` None: `node_environment(log_dir=<log_dir>/ros_logs)`.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.env = (
            dict(env) if env is not None else node_environment(log_dir=self.log_dir / "ros_logs")
        )
        self.python = python

    def log_path(self, spec: NodeSpec) -> Path:
        """The node's log file: `<log_dir>/<label>.log` (robot_0.policy_node.log)."""
        return self.log_dir / f"{spec.label}.log"

    def command(self, spec: NodeSpec) -> list[str]:
        return spec.command(self.python)

    def start(self, spec: NodeSpec, *, note: str = "start") -> subprocess.Popen:
        """Start the node; its log gets a `--- <time> <note>: <command>` line first."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        command = self.command(spec)
        with open(self.log_path(spec), "a", buffering=1) as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {note}: {' '.join(command)}\n")
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent if _PRCTL is not None else None,
            )


def stop_processes(processes: Iterable[subprocess.Popen], timeout: float) -> list[int | None]:
    """SIGINT (what Ctrl-C sends) to every running process at once, then wait.

    A process still running `timeout` s later is killed. Returns each one's
    exit code, in order, or None for a process that had to be killed.
    """
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    codes: list[int | None] = []
    for process in processes:
        try:
            codes.append(process.wait(max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            codes.append(None)
    return codes
