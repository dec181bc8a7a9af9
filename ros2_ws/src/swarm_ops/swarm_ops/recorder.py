"""`swarm deploy --record`: the run written as a rosbag2 (MCAP storage), no ROS distro needed.

A `BagRecorder` is a node in the deploy process (`rosclient.BackgroundNode`)
subscribed to what a user looks back at: each robot's scan, odom, goal and
cmd_vel (where the node's topics end up after namespace and remapping), the
sim bridge's `/swarm/events`, `/diagnostics`, and `/tf` + `/tf_static` where
`tf2_msgs` is importable (with a ROS distro). Messages are taken raw (the CDR
bytes as they came over DDS, which is exactly what rosbag2 stores) and written
with the `rosbags` package: the type name, the message definition from its
Jazzy type store, and the QoS the topic's publishers offer, so `ros2 bag play`
republishes a latched goal as latched. Each message is stamped with the time
it arrived (wall clock), as `ros2 bag record` does.

A topic appears in the bag once its first message arrived. `close()` stops
the node and finishes the bag (the MCAP summary and metadata.yaml), so call it
on every way out; a bag left unclosed cannot be read.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarm_controller.fleet import NodeSpec

BAG_VERSION = 9
"""rosbag2 metadata version that Jazzy's rosbag2 writes (QoS as a YAML list)."""
SENSOR_DEPTH = 100
"""Scans and odom queued per topic before the oldest is dropped."""
LATCHED_DEPTH = 100
"""History kept by latched topics we listen to (the bridge's events keep 100)."""


@dataclass(frozen=True)
class RecordedTopic:
    """One topic to record: its name, ROS type (`pkg/msg/Name`) and how to listen."""

    name: str
    msgtype: str
    listen: str
    """"sensor" (best effort, hears every publisher), "latched" (reliable,
    transient local: also the last messages sent before we started),
    "latched+volatile" (both: RViz's 2D Goal Pose publishes volatile), or
    "commands" (best effort, deeper queue)."""


def cmd_vel_type(spec: NodeSpec) -> str:
    """The type a policy node publishes on cmd_vel, as its parameters say."""
    from swarm_controller.parameters import PARAMETERS

    default = next(p.default for p in PARAMETERS if p.name == "cmd_vel_stamped")
    stamped = spec.parameters.get("cmd_vel_stamped", default)
    return "geometry_msgs/msg/TwistStamped" if stamped else "geometry_msgs/msg/Twist"


def recorded_topics(specs: list[NodeSpec], *, tf: bool) -> list[RecordedTopic]:
    """What a deployment of `specs` records: per robot scan, odom, goal, cmd_vel;
    then events, diagnostics and (when `tf`) /tf and /tf_static."""
    from swarm_controller.fleet import POLICY_NODE

    topics = []
    for spec in specs:
        if spec.executable != POLICY_NODE:
            continue
        topics += [
            RecordedTopic(spec.topic("scan"), "sensor_msgs/msg/LaserScan", "sensor"),
            RecordedTopic(spec.topic("odom"), "nav_msgs/msg/Odometry", "sensor"),
            RecordedTopic(spec.topic("goal"), "geometry_msgs/msg/PoseStamped", "latched+volatile"),
            RecordedTopic(spec.topic("cmd_vel"), cmd_vel_type(spec), "commands"),
        ]
    topics += [
        RecordedTopic("/swarm/events", "std_msgs/msg/String", "latched"),
        RecordedTopic("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", "commands"),
    ]
    if tf:
        topics += [
            RecordedTopic("/tf", "tf2_msgs/msg/TFMessage", "commands"),
            RecordedTopic("/tf_static", "tf2_msgs/msg/TFMessage", "latched"),
        ]
    return topics


def tf_available() -> bool:
    """Whether tf2_msgs can be imported here (a ROS distro; no pip wheel of it)."""
    try:
        importlib.import_module("tf2_msgs.msg")
    except ImportError:
        return False
    return True


def message_class(msgtype: str) -> Any:
    """The rclpy message class of `pkg/msg/Name`."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def _listen_profiles(listen: str) -> list:
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    from swarm_ops.rosclient import latched_qos

    best_effort = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
    # Sensor-data QoS with a deeper queue: while node processes start up, this
    # thread may get no CPU for a while, and a dropped scan is a hole in the bag.
    sensor = QoSProfile(
        depth=SENSOR_DEPTH,
        reliability=qos_profile_sensor_data.reliability,
        durability=qos_profile_sensor_data.durability,
    )
    return {
        "sensor": [sensor],
        "latched": [latched_qos(LATCHED_DEPTH)],
        # The latched subscription also gets a goal sent before we started; the
        # volatile one hears publishers that do not latch (RViz). A latched
        # publisher's messages come through both and are written once.
        "latched+volatile": [latched_qos(LATCHED_DEPTH), best_effort],
        "commands": [best_effort],
    }[listen]


def bag_qos(profile) -> Any:
    """An rclpy QoSProfile as rosbags' Qos (the bag's offered_qos_profiles)."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    def duration(d) -> QosTime:
        return QosTime(*divmod(int(d.nanoseconds), 1_000_000_000))

    return Qos(
        history=QosHistory(int(profile.history)),
        depth=int(profile.depth),
        reliability=QosReliability(int(profile.reliability)),
        durability=QosDurability(int(profile.durability)),
        deadline=duration(profile.deadline),
        lifespan=duration(profile.lifespan),
        liveliness=QosLiveliness(int(profile.liveliness)),
        liveliness_lease_duration=duration(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


class BagRecorder:
    """Records `topics` into a new rosbag2 (MCAP) at `path` until `close()`."""

    def __init__(self, path: Path, topics: list[RecordedTopic], *, node_name: str) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        from swarm_ops.rosclient import BackgroundNode

        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(
                f"--record {self.path}: exists already; a bag is written into a new folder"
                " (give another path, or leave it out for the run folder's bag/)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.typestore = get_typestore(Stores.ROS2_JAZZY)
        self.writer = Writer(self.path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.counts: dict[str, int] = {}
        self._connections: dict[str, Any] = {}
        self._recent: dict[str, deque[bytes]] = {}
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.ros = BackgroundNode(node_name)
        except BaseException:
            self.writer.close()
            raise
        try:
            for topic in topics:
                self._subscribe(topic)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _subscribe(self, topic: RecordedTopic) -> None:
        cls = message_class(topic.msgtype)
        profiles = _listen_profiles(topic.listen)
        for profile in profiles:
            self.ros.node.create_subscription(
                cls,
                topic.name,
                lambda data, t=topic, qos=profile: self._on_message(t, qos, data),
                profile,
                raw=True,
            )
        if len(profiles) > 1:
            self._recent[topic.name] = deque(maxlen=16)

    def _on_message(self, topic: RecordedTopic, listened, data: bytes) -> None:
        stamp = time.time_ns()
        with self._lock:
            if self._closed:
                return
            recent = self._recent.get(topic.name)
            if recent is not None:
                if data in recent:
                    return  # the same message through the other subscription
                recent.append(data)
            connection = self._connections.get(topic.name)
            if connection is None:
                connection = self._connections[topic.name] = self._add_connection(topic, listened)
            self.writer.write(connection, stamp, data)
            self.counts[topic.name] = self.counts.get(topic.name, 0) + 1

    def _add_connection(self, topic: RecordedTopic, listened):
        """The bag's record of a topic, with the QoS its publishers offer (ours when
        none is visible any more)."""
        offered = [
            info.qos_profile for info in self.ros.node.get_publishers_info_by_topic(topic.name)
        ]
        return self.writer.add_connection(
            topic.name,
            topic.msgtype,
            typestore=self.typestore,
            offered_qos_profiles=[bag_qos(q) for q in offered or [listened]],
        )

    def close(self) -> None:
        """Stop listening and finish the bag; safe to call twice."""
        if self._closed:
            return
        try:
            self.ros.close()
        finally:
            with self._lock:
                self._closed = True
                self.writer.close()

    def summary(self) -> str:
        """One line per recorded topic: its name and message count."""
        lines = [f"  {name}: {count}" for name, count in sorted(self.counts.items())]
        return "\n".join(lines) if lines else "  (no messages)"
