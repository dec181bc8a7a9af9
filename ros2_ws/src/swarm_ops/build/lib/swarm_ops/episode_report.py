"""What `swarm demo` prints about one episode, and the pictures it draws of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def print_result(result: dict[str, Any], n: int, period: float) -> None:
    """The episode's outcome (an `episode_end` event or the simulator's episode dict)."""
    arrived = round(result["arrived_fraction"] * n)
    print(
        f"  {'success' if result['success'] else 'not a success'}:"
        f" {arrived}/{n} robots arrived, {result['collisions']} collision steps"
        f" ({result['robot_collisions']} robot-robot, {result['static_collisions']} wall/obstacle),"
        f" {result['length']} steps ({result['length'] * period:.1f} s simulated)"
    )
    if arrived:
        print(
            f"  mean time-to-goal {result['time_to_goal']:.1f} s,"
            f" path efficiency {result['path_efficiency']:.2f}"
        )


def draw_pictures(recording: dict[str, Any], out: Path, *, gif: bool) -> None:
    """out/paths.png (and out/episode.gif), each announced on its own line."""
    from mappo_training.sim import render

    print(f"  paths: {render.episode_png(recording, out / 'paths.png')}")
    if gif:
        print(f"  animation: {render.episode_gif(recording, out / 'episode.gif')}")
