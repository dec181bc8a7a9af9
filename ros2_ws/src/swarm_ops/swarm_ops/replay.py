"""`swarm replay <bag>`: look back at a recorded run: its paths as a PNG and a summary.

Reads any rosbag2 (MCAP or sqlite3; `swarm deploy --record` writes one, and
so does `ros2 bag record` on real robots) with the `rosbags` package, no ROS
distro needed. A robot is a `<ns>/odom` topic (nav_msgs/Odometry); its goals
are on `<ns>/goal` (an empty frame_id cancels). Poses are drawn in `map` when
the bag says where each robot's odom frame lies in it: from `/tf` or
`/tf_static` (map -> <odom frame>), or from the sim bridge's `episode_start`
events (`map_to_odom`, per episode). Without either, each robot is drawn in
its own odom frame, every path starting near the origin, and the summary
says so. The picture is the same top-down drawing as `swarm demo`'s
(`mappo_training.sim.render`), which needs matplotlib (the `train` extra);
without it only the summary is printed.

    swarm replay out/deploy/20260101-120000/bag
    swarm replay my_tb3_run --out tb3_paths.png
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import yaml

from swarm_contract.robot_io import yaw_from_quaternion
from swarm_controller.frames import to_map

MAP_FRAME = "map"
JUMP_M = 0.5
"""A pose this far from the one a drawing step before is a reset (a new
episode, odometry restarted): the path is broken there, not joined across."""
MAX_STEPS = 4000
"""Most poses per robot in the picture; a longer bag is drawn at a coarser step."""
GOAL_TOLERANCE = 0.15
"""Metres from its goal at which a robot counts as arrived when the bag has no
events saying so (the task's arrival tolerance, sim.goal_tolerance)."""
EVENTS_TOPIC = "/swarm/events"

Pose2D = tuple[float, float, float]


def natural_key(name: str) -> list:
    """Sort key in which the numbers inside a name count as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@dataclass
class RobotTrack:
    """One robot in a bag: its odometry and the goals it was given."""

    namespace: str
    odom_topic: str
    odom_frame: str = ""
    stamps: list[float] = field(default_factory=list)
    poses: list[Pose2D] = field(default_factory=list)
    goals: list[tuple[float, str, float, float]] = field(default_factory=list)
    """(stamp, frame_id, x, y) per goal message; frame "" cancels."""


@dataclass
class BagContents:
    """What `swarm replay` read from a bag."""

    path: Path
    storage: str
    duration: float
    """Seconds from the first message to the last (as recorded)."""
    counts: dict[str, tuple[str, int]]
    """topic -> (type, messages)."""
    robots: list[RobotTrack]
    events: list[dict[str, Any]]
    frames: dict[str, list[tuple[float, Pose2D]]]
    """odom frame -> [(stamp, map -> odom pose)], in time order."""
    frames_from: str = ""
    """Where the map -> odom poses came from ("" when none)."""


def _stamp(header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def _frame(name: str) -> str:
    return name.lstrip("/")


def read_bag(path: Path) -> BagContents:
    """Read a rosbag2 folder; ValueError naming the problem when it is not one."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    path = Path(path)
    if not (path / "metadata.yaml").is_file():
        raise ValueError(
            f"{path}: not a rosbag2 folder (no metadata.yaml); give the folder"
            " `swarm deploy --record` or `ros2 bag record` wrote"
        )
    info = yaml.safe_load((path / "metadata.yaml").read_text()) or {}
    storage = str(info.get("rosbag2_bagfile_information", {}).get("storage_identifier", ""))
    # The Jazzy type store reads bags whose writer stored no message definitions.
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        counts: dict[str, tuple[str, int]] = {}
        for c in reader.connections:
            _, n = counts.get(c.topic, (c.msgtype, 0))
            counts[c.topic] = (c.msgtype, n + c.msgcount)
        robots = {
            c.topic: RobotTrack(c.topic[: -len("/odom")] or "/", c.topic)
            for c in reader.connections
            if c.topic.endswith("/odom") and c.msgtype == "nav_msgs/msg/Odometry"
        }
        goal_owner = {}
        for c in reader.connections:
            if c.topic.endswith("/goal") and c.msgtype == "geometry_msgs/msg/PoseStamped":
                ns = c.topic[: -len("/goal")]
                owner = next(
                    (r for r in robots.values() if r.odom_topic.startswith(ns + "/")), None
                )
                if owner is not None:
                    goal_owner[c.topic] = owner
        events: list[dict[str, Any]] = []
        tf: dict[str, list[tuple[float, Pose2D]]] = {}
        wanted = [
            c
            for c in reader.connections
            if c.topic in robots
            or c.topic in goal_owner
            or c.topic in (EVENTS_TOPIC, "/tf", "/tf_static")
        ]
        for c, _t, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, c.msgtype)
            if c.topic in robots:
                track = robots[c.topic]
                p, q = msg.pose.pose.position, msg.pose.pose.orientation
                track.odom_frame = track.odom_frame or _frame(msg.header.frame_id)
                track.stamps.append(_stamp(msg.header))
                track.poses.append((p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)))
            elif c.topic in goal_owner:
                p = msg.pose.position
                goal_owner[c.topic].goals.append(
                    (_stamp(msg.header), _frame(msg.header.frame_id), p.x, p.y)
                )
            elif c.topic == EVENTS_TOPIC:
                events.append(json.loads(msg.data))
            else:
                for t in msg.transforms:
                    if _frame(t.header.frame_id) == MAP_FRAME:
                        tr, q = t.transform.translation, t.transform.rotation
                        pose = (tr.x, tr.y, yaw_from_quaternion(q.x, q.y, q.z, q.w))
                        tf.setdefault(_frame(t.child_frame_id), []).append((_stamp(t.header), pose))
        duration = reader.duration * 1e-9 if reader.message_count else 0.0
    # In robot order (robot_2 before robot_10), not in the order the recorder
    # happened to discover the topics, which varies with load.
    tracks = sorted((r for r in robots.values() if r.poses), key=lambda r: natural_key(r.namespace))
    frames, frames_from = tf, "/tf"
    if not _covers(frames, tracks):
        frames, frames_from = _frames_from_events(events), "the sim bridge's episode events"
    if not _covers(frames, tracks):
        frames, frames_from = {}, ""
    for timeline in frames.values():
        timeline.sort(key=lambda item: item[0])
    return BagContents(path, storage, duration, counts, tracks, events, frames, frames_from)


def _covers(frames: dict[str, list], tracks: list[RobotTrack]) -> bool:
    return bool(tracks) and all(frames.get(t.odom_frame) for t in tracks)


def _frames_from_events(events: list[dict[str, Any]]) -> dict[str, list[tuple[float, Pose2D]]]:
    """map -> odom per robot and episode, as the sim bridge announces them."""
    frames: dict[str, list[tuple[float, Pose2D]]] = {}
    for e in events:
        if e.get("type") != "episode_start" or "map_to_odom" not in e:
            continue
        for name, pose in zip(e.get("odom_frames", []), e["map_to_odom"], strict=False):
            frames.setdefault(_frame(name), []).append((float(e["t"]), tuple(pose)))
    return frames


def in_map(contents: BagContents, track: RobotTrack) -> np.ndarray:
    """The robot's poses (N, 3) in `map`, each with the map -> odom in force at its stamp."""
    poses = np.asarray(track.poses, dtype=np.float64)
    timeline = contents.frames[track.odom_frame]
    times = [t for t, _ in timeline]
    out = poses.copy()
    for k, stamp in enumerate(track.stamps):
        # Before the first announcement the first one holds (it is the start pose).
        base = timeline[max(0, bisect_right(times, stamp) - 1)][1]
        out[k] = to_map(base, poses[k])
    return out


def last_goal(contents: BagContents, track: RobotTrack, *, mapped: bool) -> np.ndarray | None:
    """The goal in force at the end, in the drawing's frame (None: none, or cancelled,
    or in a frame the bag cannot place)."""
    if not track.goals or not track.goals[-1][1]:
        return None
    stamp, frame, x, y = track.goals[-1]
    xy = np.array([x, y])
    if mapped:
        if frame == MAP_FRAME:
            return xy
        timeline = contents.frames.get(frame)
        if not timeline:
            return None
        times = [t for t, _ in timeline]
        base = timeline[max(0, bisect_right(times, stamp) - 1)][1]
        return to_map(base, xy)
    return xy if frame == track.odom_frame else None


# --------------------------------------------------------------------------- #
# The picture.
# --------------------------------------------------------------------------- #


def paths_recording(contents: BagContents, robot_radius: float) -> dict[str, Any]:
    """The bag's paths as a recording (see mappo_training/sim/recording.py) for the
    renderer: every robot's pose on one time grid, broken (NaN) at resets."""
    mapped = bool(contents.frames)
    tracks = [(t, in_map(contents, t) if mapped else np.asarray(t.poses)) for t in contents.robots]
    t0 = min(t.stamps[0] for t, _ in tracks)
    t1 = max(t.stamps[-1] for t, _ in tracks)
    steps = [np.diff(t.stamps) for t, _ in tracks if len(t.stamps) > 1]
    dt = float(np.median(np.concatenate(steps))) if steps else 0.1
    dt = max(dt, (t1 - t0) / MAX_STEPS, 1e-3)
    grid = t0 + dt * np.arange(int((t1 - t0) / dt) + 1)
    poses = np.empty((len(grid), len(tracks), 3))
    for i, (track, samples) in enumerate(tracks):
        index = np.clip(np.searchsorted(track.stamps, grid, side="right") - 1, 0, None)
        path = samples[index]
        jumps = np.linalg.norm(np.diff(path[:, :2], axis=0), axis=1) > JUMP_M
        path[1:][jumps] = np.nan
        if np.isnan(path[-1]).any():
            path[-1] = samples[-1]
        poses[:, i] = path
    goals = [last_goal(contents, t, mapped=mapped) for t, _ in tracks]
    starts = np.array([samples[0] for _, samples in tracks])
    points = [poses[..., :2].reshape(-1, 2), *(g[None] for g in goals if g is not None)]
    extent = float(np.nanmax(np.abs(np.concatenate(points)))) + 2 * robot_radius
    arena = next((e for e in contents.events if e.get("type") == "episode_start"), None)
    layout = SimpleNamespace(
        # A simulated arena is drawn with its walls; a real one has none to show.
        arena_size=float(arena["arena_size"]) if mapped and arena else 2 * extent,
        walls=bool(mapped and arena),
        obstacles=_obstacles(arena.get("obstacles", [])) if mapped and arena else (),
        robot_radius=robot_radius,
        starts=starts,
        goals=np.array([g if g is not None else (np.nan, np.nan) for g in goals]),
        goal_tolerance=float(arena.get("goal_tolerance", GOAL_TOLERANCE))
        if arena
        else GOAL_TOLERANCE,
    )
    return {"layout": layout, "poses": poses, "period": dt}


def _obstacles(items: list[dict[str, Any]]) -> tuple:
    if not items:
        return ()
    from swarm_ops.watch import _obstacles

    return _obstacles(items)


def draw_paths(contents: BagContents, out: Path) -> Path:
    """Write the paths PNG (ImportError when matplotlib is missing)."""
    from mappo_training.sim import render
    from swarm_contract.robot_io import load_profile

    return render.episode_png(paths_recording(contents, load_profile().radius), out)


# --------------------------------------------------------------------------- #
# The summary.
# --------------------------------------------------------------------------- #


def arrivals(contents: BagContents) -> list[str]:
    """Who reached a goal: the sim bridge's arrival events, or else each robot's
    last pose within GOAL_TOLERANCE of its last goal (in its odom frame or map)."""
    found = [e for e in contents.events if e.get("type") == "arrival"]
    if found:
        return [
            f"robot {e['robot']} at t={float(e['t']):.1f} s (episode {e.get('episode')})"
            for e in found
        ]
    mapped = bool(contents.frames)
    lines = []
    for track in contents.robots:
        goal = last_goal(contents, track, mapped=mapped)
        if goal is None:
            continue
        end = (in_map(contents, track) if mapped else np.asarray(track.poses))[-1, :2]
        distance = float(np.linalg.norm(end - goal))
        if distance <= GOAL_TOLERANCE:
            lines.append(f"{track.namespace}: ended {distance:.2f} m from its goal")
    return lines


def summary(contents: BagContents) -> str:
    lines = [
        f"bag: {contents.path} ({contents.storage or 'rosbag2'}, {contents.duration:.1f} s,"
        f" {sum(n for _, n in contents.counts.values())} messages)",
        f"robots: {', '.join(t.namespace for t in contents.robots) or 'none (no <ns>/odom topic)'}",
    ]
    width = max((len(t) for t in contents.counts), default=0)
    for topic, (msgtype, n) in sorted(contents.counts.items()):
        lines.append(f"  {topic:<{width}}  {n:>6}  {msgtype}")
    if contents.frames:
        lines.append(f"frame: {MAP_FRAME} (map -> odom from {contents.frames_from})")
    elif contents.robots:
        names = sorted({t.odom_frame for t in contents.robots})
        if len(names) == 1:
            lines.append(f"frame: {names[0]} (every robot's odometry is in it)")
        else:
            lines.append(
                "frame: each robot in its own odom frame (the bag has no map -> odom: no /tf,"
                " no sim events), so paths are not placed relative to each other"
            )
    ends = [e for e in contents.events if e.get("type") == "episode_end"]
    if ends:
        good = sum(bool(e.get("success")) for e in ends)
        lines.append(f"episodes: {len(ends)} ended, {good} a success")
    reached = arrivals(contents)
    lines.append("goals reached: " + ("; ".join(reached) if reached else "none seen"))
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# The command.
# --------------------------------------------------------------------------- #


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "bag", type=Path, help="a rosbag2 folder (from swarm deploy --record or ros2 bag record)"
    )
    p.add_argument(
        "--out",
        type=Path,
        help="the paths PNG (default: <bag>_paths.png next to the bag folder)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        contents = read_bag(args.bag)
    except ImportError as err:
        print(
            f"error: swarm replay needs the rosbags package: pip install rosbags ({err})",
            file=sys.stderr,
        )
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(contents))
    if not contents.robots:
        return 0
    out = args.out or args.bag.parent / f"{args.bag.resolve().name}_paths.png"
    try:
        print(f"paths: {draw_paths(contents, out)}")
    except ImportError as err:
        print(f"no picture: {err} (pip install -e '.[train]' for matplotlib)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`ros2 run swarm_ops replay` / `python -m swarm_ops.replay`: the same as `swarm replay`."""
    from swarm_ops.command import command_main

    return command_main(sys.modules[__name__], "swarm replay", argv)


if __name__ == "__main__":
    sys.exit(main())
