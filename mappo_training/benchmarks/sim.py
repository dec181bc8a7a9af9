"""`swarm bench sim`: simulator throughput against the PyBullet floor, side by side.

env:   BatchedSwarmEnv.step with random actions: kinematics, numpy contacts,
       the lidar of every robot (one rayTestBatch), robot_io observations,
       critic state, rewards, auto-reset.
floor: what any PyBullet swarm simulator pays at least per control step, in
       the same physics client with the same bodies: one stepSimulation, one
       rayTestBatch with the rays of the env's current poses, and a position and
       velocity read per robot body. The floor pauses the garbage collector
       around its ray cast exactly as the env does (without that, a third of
       the result-tuple cost is collector work), so it stays a floor.

Both are measured in robot-steps per second of this process's CPU time (both
loops are single-threaded), alternating in a few rounds of which the best
counts, so other processes on a shared machine disturb the ratio less.
The goal is env / floor >= 0.8 at 16 arenas x 4 robots x 24 beams.
"""

from __future__ import annotations

import argparse
import json
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arenas", type=int, default=16, help="arenas in one physics client")
    p.add_argument("--robots", type=int, default=4, help="robots per arena")
    p.add_argument("--beams", type=int, default=24, help="lidar beams in the observation")
    p.add_argument("--rays-per-beam", type=int, default=3, help="rays cast per beam")
    p.add_argument("--steps", type=int, default=150, help="control steps per timed round")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (best one counts)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the numbers")


def measure(
    arenas: int, robots: int, beams: int, rays_per_beam: int, steps: int, rounds: int
) -> dict[str, float]:
    """Robot-steps per second of the env and of the floor, and their ratio."""
    import numpy as np
    import pybullet

    from mappo_training.sim import BatchedSwarmEnv, SimConfig
    from mappo_training.sim.lidar import paused_gc

    cfg = SimConfig(num_robots=robots, num_beams=beams, sim_scan_rays=beams * rays_per_beam)
    env = BatchedSwarmEnv(cfg, num_arenas=arenas, seed=0)
    try:
        env.reset()
        rng = np.random.default_rng(0)
        actions = rng.uniform(-1, 1, (steps, arenas, robots, 2)).astype(np.float32)
        world = env.world
        caster = world.lidar(env.scan_rays)
        # The caster's own chunk size: PyBullet returns nothing for a batch of
        # exactly MAX_RAY_INTERSECTION_BATCH_SIZE rays, so the floor must not use it.
        chunk = caster.batch_size
        bodies = world.robot_bodies.reshape(-1).tolist()
        client = world.client

        def current_rays() -> tuple[np.ndarray, np.ndarray]:
            poses = world.poses()
            xy = poses[..., :2] + world.arena_origins[:, None, :]
            starts, ends = caster.rays(xy.reshape(-1, 2), poses[..., 2].reshape(-1))
            return starts.copy(), ends.copy()

        def env_round() -> float:
            began = time.process_time()
            for a in actions:
                env.step(a)
            return time.process_time() - began

        def floor_round() -> float:
            starts, ends = current_rays()
            began = time.process_time()
            for _ in range(steps):
                pybullet.stepSimulation(physicsClientId=client)
                with paused_gc():
                    for first in range(0, len(starts), chunk):
                        pybullet.rayTestBatch(
                            starts[first : first + chunk],
                            ends[first : first + chunk],
                            physicsClientId=client,
                        )
                for body in bodies:
                    pybullet.getBasePositionAndOrientation(body, physicsClientId=client)
                    pybullet.getBaseVelocity(body, physicsClientId=client)
            return time.process_time() - began

        env_round()  # warm-up: first episodes, caches
        env_best = floor_best = float("inf")
        for _ in range(rounds):
            env_best = min(env_best, env_round())
            floor_best = min(floor_best, floor_round())
    finally:
        env.close()
    work = arenas * robots * steps
    env_rate, floor_rate = work / env_best, work / floor_best
    return {
        "env_steps_per_s": round(env_rate, 1),
        "floor_steps_per_s": round(floor_rate, 1),
        "ratio": round(env_rate / floor_rate, 3),
        "arenas": arenas,
        "robots": robots,
        "beams": beams,
        "rays_per_robot": beams * rays_per_beam,
    }


def run(args: argparse.Namespace) -> int:
    result = measure(
        args.arenas, args.robots, args.beams, args.rays_per_beam, args.steps, args.rounds
    )
    print(
        f"sim: {result['arenas']} arenas x {result['robots']} robots,"
        f" {result['beams']} beams ({result['rays_per_robot']} rays per robot)"
    )
    print(f"  env   BatchedSwarmEnv.step        {result['env_steps_per_s']:>10,.0f} robot-steps/s")
    print(
        f"  floor step + rays + state reads   {result['floor_steps_per_s']:>10,.0f} robot-steps/s"
    )
    print(f"  ratio env / floor                 {result['ratio']:>10.2f}  (goal >= 0.8)")
    if args.json:
        print(json.dumps({k: result[k] for k in ("env_steps_per_s", "floor_steps_per_s", "ratio")}))
    return 0
