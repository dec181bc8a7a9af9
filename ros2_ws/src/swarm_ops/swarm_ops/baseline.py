"""A hand-written go-to-goal controller in the simulator, without ROS: a baseline to
look at, not a solution (`swarm demo --controller handwritten`)."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from swarm_ops.episode_report import draw_pictures, print_result

CLEAR_M = 0.7
"""How far a beam must be free (metres) for the demo controller to head along it."""
KEEP_RIGHT = 0.4
"""Extra cost (radians) of passing an obstacle on the left."""


def demo_go_to_goal(obs: np.ndarray, contract) -> np.ndarray:
    """Actions (..., 2) in [-1, 1] from observations (..., obs_dim) of `contract`'s layout.

    Heads for the free beam closest to the goal's bearing (a beam is free when
    it and its neighbours are clear for CLEAR_M, or past the goal), preferring
    to pass obstacles on the right, and slows down when something is ahead.
    """
    beams = contract.num_beams
    goal = beams * contract.scan_stack
    scan = contract.range_min + obs[..., :beams] * (contract.range_max - contract.range_min)
    distance = obs[..., goal] * contract.goal_clip
    bearing = np.arctan2(obs[..., goal + 2], obs[..., goal + 1])

    angles = -np.pi + 2 * np.pi * np.arange(beams) / beams  # beam centres, robot frame
    needed = np.minimum(distance + 0.1, CLEAR_M)[..., None]
    clear = scan > needed
    clear &= np.roll(clear, 1, axis=-1) & np.roll(clear, -1, axis=-1)
    off_course = np.abs(np.angle(np.exp(1j * (angles - bearing[..., None]))))
    # Keep right: a detour to the left costs more, so robots meeting head-on
    # both swerve right and pass each other.
    cost = off_course + KEEP_RIGHT * (angles > bearing[..., None])
    cost = np.where(clear, cost, np.inf)
    heading = np.where(np.isfinite(cost).any(axis=-1), angles[cost.argmin(axis=-1)], -np.pi / 2)

    front = scan[..., beams // 2 - 1 : beams // 2 + 2].min(axis=-1)
    caution = np.clip((front - 0.25) / 0.4, 0.0, 1.0)
    speed = np.clip(np.cos(heading), 0.0, 1.0) * caution * np.clip(distance / 0.4, 0.3, 1.0)
    turn = np.clip(heading / (np.pi / 4), -1.0, 1.0)
    return np.stack([speed, turn], axis=-1).astype(np.float32)


def run_handwritten(args: argparse.Namespace) -> int:
    """One episode in the simulator driven by demo_go_to_goal, with pictures."""
    from mappo_training.sim import BatchedSwarmEnv, EpisodeRecorder, SimConfig
    from swarm_contract.config import ConfigError, from_dict

    started = time.perf_counter()
    sim = {"num_robots": args.robots, "scenario": args.scenario or "circle"}
    if getattr(args, "layout", None):
        sim["layout"] = args.layout
    if getattr(args, "fidelity", None):
        sim["fidelity"] = {"preset": args.fidelity}
    try:
        cfg = from_dict(SimConfig, sim, "sim")
    except (ConfigError, ValueError) as err:
        print(f"error: --robots/--scenario/--layout/--fidelity: {err}", file=sys.stderr)
        return 2
    with BatchedSwarmEnv(cfg, num_arenas=1, seed=args.seed) as env:
        obs, _ = env.reset(seed=args.seed)
        recorder = EpisodeRecorder(env, arena=0)
        while not recorder.done:
            obs, _, _, _, _, info = env.step(demo_go_to_goal(obs, env.contract))
            recorder.add(info)
        recording = recorder.recording()
        arena = env.arena_size
        period = env.profile.control_period

    print(
        f"demo: {cfg.layout + ' layout' if cfg.layout else cfg.scenario + ' scenario'},"
        f" {cfg.num_robots} robots in a {arena:.1f} m arena, {cfg.fidelity.preset} fidelity,"
        " driven by demo_go_to_goal (a hand-written controller, not a trained policy)"
    )
    print_result(recording["result"], cfg.num_robots, period)
    draw_pictures(recording, args.out, gif=args.gif)
    print(f"  ({time.perf_counter() - started:.1f} s wall time)")
    return 0
