"""Watching a simulated swarm over ROS 2: the sim bridge's events, the robots'
odometry and each policy node's active policy, recorded from this process.

`SwarmWatcher` is what `swarm demo` and `swarm bench deploy` see of a running
deployment; it can also start a fresh episode (/swarm/reset) and turn an
episode into a recording for the pictures.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swarm_contract.robot_io import yaw_from_quaternion
from swarm_ops.rosclient import BackgroundNode, call_service, latched_qos, wait_for

NODES_UP_TIMEOUT = 60.0
"""Seconds a simulated deployment gets to bring every node up (2 busy cores)."""


@dataclass
class OdomTrack:
    """One robot's odometry samples: simulated time and pose, in arrival order."""

    stamps: list[float] = field(default_factory=list)
    poses: list[tuple[float, float, float]] = field(default_factory=list)


def deployment_failure(deployment) -> str | None:
    """Why a deployment cannot go on (a node down for good), or None; polls it,
    so crashed nodes that may respawn are restarted meanwhile."""
    down = deployment.poll()
    return f"{down[0].spec.label} exited (see {down[0].log_path})" if down else None


class SwarmWatcher:
    """A node in this process that follows the sim bridge and the policy nodes.

    Records /swarm/events, every robot's odom (unless `odometry` is False) and
    each policy node's latched ~/active_policy. `close()` (or leaving a `with`
    block) ends it.
    """

    def __init__(self, num_robots: int, prefix: str = "robot_", *, odometry: bool = True) -> None:
        from nav_msgs.msg import Odometry
        from rclpy.qos import qos_profile_sensor_data
        from std_msgs.msg import String

        self.num_robots = num_robots
        self.namespaces = [f"/{prefix}{i}" for i in range(num_robots)]
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.active: dict[str, dict[str, Any]] = {}
        self.tracks = [OdomTrack() for _ in range(num_robots)]
        self.sim_time = 0.0

        self.ros = BackgroundNode("swarm_demo_watcher")
        self.node = self.ros.node
        # The bridge keeps a history of events and the nodes latch their policy:
        # match their QoS so a late subscriber still gets them.
        self.node.create_subscription(String, "/swarm/events", self._on_event, latched_qos(100))
        for i, ns in enumerate(self.namespaces):
            self.node.create_subscription(
                String, f"{ns}/policy_node/active_policy", self._on_active_policy, latched_qos()
            )
            if odometry:
                self.node.create_subscription(
                    Odometry,
                    f"{ns}/odom",
                    lambda msg, robot=i: self._on_odom(robot, msg),
                    qos_profile_sensor_data,
                )

    def __enter__(self) -> SwarmWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.ros.close()

    def _on_event(self, msg) -> None:
        event = json.loads(msg.data)
        with self._lock:
            self.events.append(event)
            self.sim_time = max(self.sim_time, float(event.get("t") or 0.0))

    def _on_active_policy(self, msg) -> None:
        info = json.loads(msg.data)
        with self._lock:
            self.active[str(info.get("robot", "")).rstrip("/")] = info

    def _on_odom(self, robot: int, msg) -> None:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        yaw = yaw_from_quaternion(q.x, q.y, q.z, q.w)
        with self._lock:
            self.tracks[robot].stamps.append(stamp)
            self.tracks[robot].poses.append((p.x, p.y, yaw))
            self.sim_time = max(self.sim_time, stamp)

    # -- queries ------------------------------------------------------------ #

    def find(self, kind: str, episode: int | None = None) -> list[dict[str, Any]]:
        """Events of type `kind` (of one episode, when given), in order."""
        with self._lock:
            return [
                e
                for e in self.events
                if e["type"] == kind and (episode is None or e.get("episode") == episode)
            ]

    def policies_up(self) -> bool:
        with self._lock:
            return all(ns in self.active for ns in self.namespaces)

    def active_policies(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.active)

    def wait_until_up(self, deployment, timeout: float = NODES_UP_TIMEOUT) -> None:
        """Until every policy node announced its policy and the bridge its first
        episode; RuntimeError at once if a node of `deployment` goes down for good."""
        wait_for(
            lambda: self.policies_up() and self.find("episode_start"),
            timeout,
            f"all {self.num_robots} policy nodes active",
            stop=lambda: deployment_failure(deployment),
        )

    def reset_episode(self, timeout: float = 10.0) -> int:
        """Ask the bridge to end its episode and start the next one (/swarm/reset);
        returns the new episode's number."""
        from std_srvs.srv import Trigger

        answer = call_service(self.node, Trigger, "/swarm/reset", Trigger.Request(), timeout)
        if not answer.success:
            raise RuntimeError(f"/swarm/reset refused: {answer.message}")
        started = re.search(r"episode (\d+) started", answer.message)
        if started is None:
            raise RuntimeError(f"/swarm/reset answered {answer.message!r}")
        return int(started.group(1))

    def recording(self, episode: int, robot_radius: float, period: float) -> dict[str, Any]:
        """Episode `episode` as a recording dict (see sim/recording.py) for the pictures.

        Poses come from odometry, one per control step (the sample stamped at
        that step; the previous pose where a best-effort sample was lost), moved
        from each robot's odom frame into map with the episode's map_to_odom.
        """
        from mappo_training.sim.scenarios import ArenaLayout
        from swarm_controller.frames import to_map

        start = self.find("episode_start", episode)[0]
        end = self.find("episode_end", episode)[0]
        t0, length = float(start["t"]), int(end["length"])
        starts = np.asarray(start["starts"], dtype=np.float64)
        layout = ArenaLayout(
            arena_size=float(start["arena_size"]),
            starts=starts,
            goals=np.asarray(start["goals"], dtype=np.float64),
            obstacles=_obstacles(start.get("obstacles", [])),
            robot_radius=robot_radius,
            goal_tolerance=float(start.get("goal_tolerance", 0.15)),
        )
        # A bridge with one shared frame (or from before per-robot frames) sends none.
        origins = np.asarray(start.get("map_to_odom") or np.zeros((len(starts), 3)))
        poses = np.repeat(starts[None], length + 1, axis=0)
        with self._lock:
            tracks = [(list(t.stamps), list(t.poses)) for t in self.tracks]
        for robot, (stamps, samples) in enumerate(tracks):
            seen: set[int] = set()
            for stamp, pose in zip(stamps, samples, strict=True):
                step = round((stamp - t0) / period)
                # Samples stamped like the start may be the previous episode's
                # last pose, and at the last step the bridge also publishes the
                # next episode's start under the same stamp: step 0 is the
                # layout's start, and otherwise the first sample wins.
                if 0 < step <= length and step not in seen:
                    seen.add(step)
                    poses[step, robot] = to_map(origins[robot], pose)
            for step in range(1, length + 1):
                if step not in seen:
                    poses[step, robot] = poses[step - 1, robot]

        def steps_of(kind: str) -> list[tuple[int, int]]:
            return [
                (max(1, round((float(e["t"]) - t0) / period)), int(e["robot"]))
                for e in self.find(kind, episode)
            ]

        return {
            "layout": layout,
            "poses": poses,
            "collisions": steps_of("collision"),
            "arrivals": steps_of("arrival"),
            "period": period,
            "result": end,
        }


def _obstacles(items: list[dict[str, Any]]) -> tuple:
    from mappo_training.sim.geometry import Obstacle
    from swarm_contract.config import from_dict

    return tuple(from_dict(Obstacle, o, f"obstacles[{i}]") for i, o in enumerate(items))
