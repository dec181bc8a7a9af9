"""`swarm bench sim`: simulator throughput against the PyBullet floor, side by side.

env:   BatchedSwarmEnv.step with random actions: kinematics, numpy contacts,
       the lidar of every robot (rayTestBatch), robot_io observations,
       critic state, rewards, auto-reset.
floor: what any PyBullet swarm simulator pays at least per control step, in
       the same physics clients with the same bodies: one stepSimulation per
       client, the rays of the env's current poses cast in the env's chunks, and
       a position and velocity read per robot body. The floor pauses the garbage
       collector around its ray cast exactly as the env does (without that, a
       third of the result-tuple cost is collector work), so it stays a floor.

Rates are robot-steps per second of this process's CPU time (both loops are
single-threaded, so that is the rate per core); the env's wall-clock rate is
reported beside it. Env and floor alternate in a few rounds of which the best
counts, so other processes on a shared machine disturb the ratio less. With
several arena counts (`--arenas 16,64,256`) every round runs each K in turn,
so machine noise hits every K alike. The goals: env / floor >= 0.8 at 16
arenas x 4 robots x 24 beams, and a per-core rate that does not fall from 16
arenas to 256.
"""

from __future__ import annotations

import argparse
import json
import time


def arena_counts(text: str) -> list[int]:
    """`--arenas` value: one count or a comma-separated list, e.g. 16,64,256."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give arena counts >= 1, one or comma-separated (16,64,256)"
        )
    return counts


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--arenas",
        type=arena_counts,
        default=[16],
        help="arenas per process: one count, or several side by side (16,64,256)",
    )
    p.add_argument("--robots", type=int, default=4, help="robots per arena")
    p.add_argument("--beams", type=int, default=24, help="lidar beams in the observation")
    p.add_argument("--rays-per-beam", type=int, default=3, help="rays cast per beam")
    p.add_argument("--steps", type=int, default=150, help="control steps per timed round")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (best one counts)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the numbers")


class _Bench:
    """One arena count's env and floor, each timed one round at a time."""

    def __init__(self, arenas: int, robots: int, beams: int, rays_per_beam: int, steps: int):
        import numpy as np

        from mappo_training.sim import BatchedSwarmEnv, SimConfig

        cfg = SimConfig(num_robots=robots, num_beams=beams, sim_scan_rays=beams * rays_per_beam)
        self.env = BatchedSwarmEnv(cfg, num_arenas=arenas, seed=0)
        self.env.reset()
        rng = np.random.default_rng(0)
        self.actions = rng.uniform(-1, 1, (steps, arenas, robots, 2)).astype(np.float32)
        self.work = arenas * robots * steps
        self.env_cpu = self.env_wall = self.floor_cpu = float("inf")

    def env_round(self) -> None:
        began, began_wall = time.process_time(), time.perf_counter()
        for a in self.actions:
            self.env.step(a)
        self.env_cpu = min(self.env_cpu, time.process_time() - began)
        self.env_wall = min(self.env_wall, time.perf_counter() - began_wall)

    def floor_round(self) -> None:
        import pybullet

        from mappo_training.sim.lidar import paused_gc

        world = self.env.world
        caster = world.lidar(self.env.scan_rays)
        # The caster's own chunk size: PyBullet returns nothing for a batch of
        # exactly MAX_RAY_INTERSECTION_BATCH_SIZE rays, so the floor must not use it.
        chunk = caster.batch_size
        poses = world.poses()
        xy = poses[..., :2] + world.arena_origins[:, None, :]
        per_client = []
        for client in world.clients:
            mine = world.arena_clients == client
            starts, ends = caster.rays(xy[mine].reshape(-1, 2), poses[mine][..., 2].reshape(-1))
            bodies = world.robot_bodies[mine].reshape(-1).tolist()
            per_client.append((client, starts.copy(), ends.copy(), bodies))
        began = time.process_time()
        for _ in range(len(self.actions)):
            for client, starts, ends, bodies in per_client:
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
        self.floor_cpu = min(self.floor_cpu, time.process_time() - began)

    def result(self) -> dict[str, float]:
        env_rate, floor_rate = self.work / self.env_cpu, self.work / self.floor_cpu
        return {
            "env_steps_per_s": round(env_rate, 1),
            "floor_steps_per_s": round(floor_rate, 1),
            "ratio": round(env_rate / floor_rate, 3),
            "env_wall_steps_per_s": round(self.work / self.env_wall, 1),
        }


def measure_many(
    arenas: list[int], robots: int, beams: int, rays_per_beam: int, steps: int, rounds: int
) -> dict[int, dict[str, float]]:
    """For each arena count: robot-steps per CPU second of the env and of the
    floor, their ratio and the env's wall-clock rate; rounds interleave the counts."""
    benches: dict[int, _Bench] = {}
    try:
        for k in arenas:
            benches[k] = _Bench(k, robots, beams, rays_per_beam, steps)
            benches[k].env_round()  # warm-up: first episodes, caches
            benches[k].env_cpu = benches[k].env_wall = float("inf")
        for _ in range(rounds):
            for bench in benches.values():
                bench.env_round()
                bench.floor_round()
    finally:
        for bench in benches.values():
            bench.env.close()
    return {k: bench.result() for k, bench in benches.items()}


def measure(
    arenas: int, robots: int, beams: int, rays_per_beam: int, steps: int, rounds: int
) -> dict[str, float]:
    """Robot-steps per second of the env and of the floor, and their ratio."""
    result = measure_many([arenas], robots, beams, rays_per_beam, steps, rounds)[arenas]
    return {
        **result,
        "arenas": arenas,
        "robots": robots,
        "beams": beams,
        "rays_per_robot": beams * rays_per_beam,
    }


def run(args: argparse.Namespace) -> int:
    counts = list(dict.fromkeys(args.arenas))
    if len(counts) > 1:
        return _run_many(args, counts)
    result = measure(
        counts[0], args.robots, args.beams, args.rays_per_beam, args.steps, args.rounds
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


def _run_many(args: argparse.Namespace, counts: list[int]) -> int:
    results = measure_many(
        counts, args.robots, args.beams, args.rays_per_beam, args.steps, args.rounds
    )
    print(
        f"sim: {args.robots} robots per arena, {args.beams} beams"
        f" ({args.beams * args.rays_per_beam} rays per robot), robot-steps/s,"
        f" best of {args.rounds} interleaved rounds"
    )
    print(f"  {'arenas':>6}  {'env/core':>10}  {'env wall':>10}  {'floor/core':>10}  {'ratio':>6}")
    for k, r in results.items():
        print(
            f"  {k:>6}  {r['env_steps_per_s']:>10,.0f}  {r['env_wall_steps_per_s']:>10,.0f}"
            f"  {r['floor_steps_per_s']:>10,.0f}  {r['ratio']:>6.2f}"
        )
    first, last = results[counts[0]], results[counts[-1]]
    print(
        f"  per core, {counts[-1]} arenas against {counts[0]}:"
        f" {last['env_steps_per_s'] / first['env_steps_per_s']:.2f}x (goal >= 1.0)"
    )
    if args.json:
        keys = ("env_steps_per_s", "floor_steps_per_s", "ratio", "env_wall_steps_per_s")
        print(json.dumps({key: {str(k): r[key] for k, r in results.items()} for key in keys}))
    return 0
