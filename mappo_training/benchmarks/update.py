"""`swarm bench update`: one PPO update on the CPU against the same on --device.

The learner is the only part of training a GPU can take: the simulator stays
on the CPU. This times the update (every epoch and minibatch of one rollout's
batch) of a config's networks on the CPU and on the chosen device, side by
side in one run, so a user can see whether `--device cuda` pays for a task
before starting a long run. The batch is random data of the config's exact
shapes (robots, arenas, rollout length, observation and state widths), so no
simulator is needed: it runs on a GPU machine without PyBullet.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="nav_random_4", help="training config (name or YAML)")
    p.add_argument("--device", default="cuda", help="device to compare with the CPU")
    p.add_argument("--updates", type=int, default=3, help="timed updates each (after a warm-up)")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")


def batch_shapes(cfg) -> tuple[list[int], int, int]:
    """(observation width per robot, state width, action width) of a swarm config."""
    from mappo_training.sim.env import BatchedSwarmEnv, state_dim_of

    sim = cfg.sim
    obs_dim = sim.contract(sim.robot_profile()).obs_dim
    return [obs_dim] * sim.num_robots, state_dim_of(sim, obs_dim), BatchedSwarmEnv.action_dim


def random_rollout(learner, steps: int, arenas: int, seed: int = 0):
    """A full buffer of random observations acted by `learner`, returns computed."""
    from mappo_training.algo import RolloutBuffer

    rng = np.random.default_rng(seed)
    n, d, s, a = learner.num_agents, learner.obs_dim, learner.state_dim, learner.act_dim
    buf = RolloutBuffer(steps, arenas, n, obs_dim=d, state_dim=s, act_dim=a)
    zeros = np.zeros(arenas, bool)
    for t in range(steps):
        obs = rng.normal(size=(arenas, n, d)).astype(np.float32)
        state = rng.normal(size=(arenas, n, s)).astype(np.float32)
        actions, logp = learner.act(obs)
        buf.add(
            t,
            obs=obs,
            state=state,
            actions=actions,
            logp=logp,
            values=rng.normal(size=(arenas, n)).astype(np.float32),
            rewards=rng.normal(size=(arenas, n)).astype(np.float32),
            terminated=zeros,
            truncated=zeros,
        )
    buf.compute_returns_and_advantages(np.zeros((arenas, n), np.float32), 0.99, 0.95)
    return buf


def seconds_per_update(cfg, device: str, updates: int) -> float:
    import torch

    from mappo_training.algo import ActionSpec, MAPPOLearner

    obs_dims, state_dim, act_dim = batch_shapes(cfg)
    spec = ActionSpec(kind="box", dim=act_dim)
    learner = MAPPOLearner(
        cfg.algo, obs_dims, [spec] * len(obs_dims), state_dim, device=device, seed=0
    )
    buf = random_rollout(learner, cfg.run.rollout_steps, cfg.run.num_arenas)

    def sync() -> None:
        if learner.device.type == "cuda":
            torch.cuda.synchronize(learner.device)

    learner.update(buf)  # warm-up: allocations, kernel selection
    sync()
    start = time.perf_counter()
    for _ in range(updates):
        learner.update(buf)
    sync()
    return (time.perf_counter() - start) / updates


def run(args: argparse.Namespace) -> int:
    import torch

    from mappo_training.algo.networks import matmul_precision
    from mappo_training.experiment import load_train_config
    from mappo_training.train import check_device

    cfg = load_train_config(args.config, ["run.eval_episodes=0", *args.overrides])
    if cfg.env.kind != "swarm":
        print("swarm bench update: needs a swarm config (env.kind: swarm)")
        return 2
    check_device(args.device)
    torch.set_num_threads(max(1, cfg.run.torch_threads))
    samples = cfg.run.rollout_steps * cfg.run.num_arenas * len(batch_shapes(cfg)[0])
    # As in training: the config's matmul precision (bf16 inputs under
    # "medium" on a CPU with AMX, TF32/bf16 on a GPU).
    with matmul_precision(cfg.run.matmul_precision):
        cpu = seconds_per_update(cfg, "cpu", args.updates)
        other = seconds_per_update(cfg, args.device, args.updates)
    report = {
        "config": args.config,
        "device": args.device,
        "matmul_precision": cfg.run.matmul_precision,
        "samples_per_update": int(samples),
        "cpu_s_per_update": round(cpu, 4),
        "device_s_per_update": round(other, 4),
        "speedup": round(cpu / other, 2),
    }
    print(
        f"one update of {samples} robot-steps: CPU {cpu:.3f} s, {args.device} {other:.3f} s"
        f" ({cpu / other:.2f}x)"
    )
    if args.json:
        print(json.dumps(report))
    return 0
