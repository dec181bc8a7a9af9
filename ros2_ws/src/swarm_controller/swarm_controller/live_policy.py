"""The live-policy record: which policy a robot was swapped to, so a respawned node resumes it.

A live swap changes `policy_path` only in the running process; the fleet file
(and so a respawned node's command line) still names the launch policy. On
every accepted swap the node writes one small JSON file, atomically (a
temporary file, then `os.replace`), and at configure reads it back: when the
record belongs to the same launch policy and the live file is unchanged, the
node resumes it. No rclpy here: the rules are plain Python.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class LivePolicyRecord:
    """One robot's last accepted live swap."""

    launch_policy_path: str
    """policy_path the node was started with (the fleet file's)."""
    live_policy_path: str
    """The policy swapped in live, as the swap named it."""
    sha256: str
    """sha256 of the live file when it was accepted."""
    time: float
    """Unix time of the swap."""


def record_path(
    template: str, namespace: str, environ: dict[str, str] | None = None
) -> Path | None:
    """The record file for the `live_policy_record` parameter, or None when it is off ("").

    Expands `$ROS_HOME` (default ~/.ros, as ROS itself does), `{namespace}`
    (the node's namespace without its leading slash, other slashes as `_`,
    "root" for "/") and a leading `~`.
    """
    if not template.strip():
        return None
    env = os.environ if environ is None else environ
    ros_home = env.get("ROS_HOME") or str(Path("~/.ros").expanduser())
    name = namespace.strip("/").replace("/", "_") or "root"
    text = template.replace("$ROS_HOME", ros_home).replace("{namespace}", name)
    return Path(text).expanduser()


def write_record(path: Path, record: LivePolicyRecord) -> None:
    """Replace the record in one step: a reader (or a crash) sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(asdict(record), file, sort_keys=True)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(path: Path) -> LivePolicyRecord | None:
    """The record, None when there is none; ValueError naming the file when it is unusable."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ValueError(f"live policy record {path} cannot be read: {err}") from None
    try:
        record = LivePolicyRecord(**data)
    except TypeError:
        record = None
    if record is None or not all(
        isinstance(getattr(record, key), str)
        for key in ("launch_policy_path", "live_policy_path", "sha256")
    ):
        raise ValueError(
            f"live policy record {path} is not one the policy node writes"
            f" (keys {sorted(data) if isinstance(data, dict) else type(data).__name__})"
        )
    return record


def new_record(launch_policy_path: str, live_policy_path: str, sha256: str) -> LivePolicyRecord:
    """The record of a swap accepted now."""
    return LivePolicyRecord(launch_policy_path, live_policy_path, sha256, time.time())
