"""Step the simulator in worker processes so both cores work during rollouts.

`WorkerPool` splits K arenas over W processes, each owning a batched env
(BatchedSwarmEnv, or ParallelEnvBatch) of K/W arenas, and is itself a
`BatchedEnv` of K arenas: arrays are concatenated along the arena axis. Beyond
that interface it lets each worker collect a whole rollout on its own
(`start_rollouts` / `finish_rollouts`). Workers are started with `spawn` so
none inherits the learner's torch threads.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import traceback
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mappo_training.batched_env import ActionSpec, BatchedEnv
    from swarm_contract.robot_io import Contract

WORKER_SEED_STRIDE = 104_729  # a prime, so worker seed ranges never overlap


def _worker(conn, make_env, kwargs) -> None:
    env = None
    acting: dict = {}  # the worker's actor copy, built on the first rollout request
    try:
        env = make_env(**kwargs)
        conn.send(("ready", describe(env)))
        while True:
            cmd, arg = conn.recv()
            if cmd == "step":
                conn.send(("ok", env.step(arg)))
            elif cmd == "rollout":
                from mappo_training.rollout import remote_rollout

                conn.send(("ok", remote_rollout(env, acting, arg)))
            elif cmd == "reset":
                conn.send(("ok", env.reset(seed=arg)))
            elif cmd == "snapshot":
                conn.send(("ok", env.snapshot()))
            elif cmd == "restore":
                env.restore(arg)
                conn.send(("ok", None))
            elif cmd == "close":
                break
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass
    except Exception:
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send(("error", traceback.format_exc()))
    finally:
        if env is not None:
            env.close()
        conn.close()


def describe(env: BatchedEnv) -> dict[str, Any]:
    """What a pool needs to know of a worker's env (picklable)."""
    return {
        "num_arenas": env.num_arenas,
        "num_robots": env.num_robots,
        "obs_dims": list(env.obs_dims),
        "obs_dim": env.obs_dim,
        "action_specs": list(env.action_specs),
        "action_dim": env.action_dim,
        "state_dim": env.state_dim,
        "contract": env.contract,
        "supports_snapshot": env.supports_snapshot,
    }


class WorkerError(RuntimeError):
    """A simulator worker failed; the message carries its traceback."""


class RolloutPool:
    """What the Trainer needs of simulator workers that collect whole rollouts:
    the arena split, and `start_rollouts` / `finish_rollouts` / `snapshot` /
    `restore` in subclasses (WorkerPool here, ray_pool.RayWorkerPool on a Ray
    cluster). The Trainer picks a pool and never branches on which."""

    _split: list[int]
    _offsets: list[int]

    def _adopt(self, infos: list[dict[str, Any]]) -> None:
        """Take the shape of the env from the workers' `describe` replies."""
        first = infos[0]
        self.num_robots: int = first["num_robots"]
        self.obs_dims: list[int] = first["obs_dims"]
        self.obs_dim: int = first["obs_dim"]
        self.action_specs: list[ActionSpec] = first["action_specs"]
        self.action_dim: int = first["action_dim"]
        self.state_dim: int = first["state_dim"]
        self.contract: Contract | None = first["contract"]
        # Every worker's env is built the same way: the first one speaks for all.
        self.supports_snapshot: bool = first["supports_snapshot"]
        self._split = [i["num_arenas"] for i in infos]
        self.num_arenas = sum(self._split)
        self._offsets = np.cumsum([0] + self._split[:-1]).tolist()

    @property
    def num_workers(self) -> int:
        return len(self._split)

    @property
    def arena_offsets(self) -> list[int]:
        """Index of each worker's first arena in the pool's arena axis."""
        return list(self._offsets)

    def split(self, arrays: np.ndarray) -> list[np.ndarray]:
        """An (K, ...) array cut into each worker's arenas."""
        return np.split(np.asarray(arrays), np.cumsum(self._split)[:-1], axis=0)

    def worker_seeds(self, seed: int | None) -> list[int | None]:
        """Each worker's share of a pool seed (None stays None)."""
        return [
            None if seed is None else seed + w * WORKER_SEED_STRIDE for w in range(self.num_workers)
        ]

    def merge_steps(self, parts: list[tuple]) -> tuple:
        """The workers' `step` replies as one step of the pool's K arenas."""
        obs, state, reward, terminated, truncated = (
            np.concatenate([p[i] for p in parts], axis=0) for i in range(5)
        )
        info: dict[str, Any] = {}
        for key in parts[0][5]:
            if key == "episodes":
                info[key] = [
                    dict(ep, arena=ep["arena"] + offset)
                    for p, offset in zip(parts, self._offsets, strict=True)
                    for ep in p[5][key]
                ]
            else:
                info[key] = np.concatenate([p[5][key] for p in parts], axis=0)
        return obs, state, reward, terminated, truncated, info

    def fault_metrics(self) -> dict[str, float]:
        """Progress-log columns about worker faults (none for local processes)."""
        return {}

    def take_notices(self) -> list[str]:
        """Lines for the user about workers replaced since the last call."""
        return []


class WorkerPool(RolloutPool):
    """K arenas across W processes: one `BatchedEnv` made of the workers' envs."""

    def __init__(self, make_env, num_workers: int, arenas_per_worker: int, seed: int, **kw):
        ctx = mp.get_context("spawn")
        self._conns = []
        self._procs = []
        for w in range(num_workers):
            parent, child = ctx.Pipe()
            kwargs = dict(kw, num_arenas=arenas_per_worker, seed=seed + w * WORKER_SEED_STRIDE)
            proc = ctx.Process(target=_worker, args=(child, make_env, kwargs), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._adopt([self._receive(c) for c in self._conns])

    def _receive(self, conn):
        try:
            status, payload = conn.recv()
        except EOFError as err:
            raise WorkerError("a simulator worker exited unexpectedly") from err
        if status == "error":
            raise WorkerError(f"simulator worker failed:\n{payload}")
        return payload

    def _all(self, cmd: str, args: list) -> list:
        for conn, arg in zip(self._conns, args, strict=True):
            conn.send((cmd, arg))
        return [self._receive(c) for c in self._conns]

    def reset(self, seed: int | None = None):
        parts = self._all("reset", self.worker_seeds(seed))
        return tuple(np.concatenate(x, axis=0) for x in zip(*parts, strict=True))

    def step(self, actions: np.ndarray):
        return self.merge_steps(self._all("step", self.split(actions)))

    def start_rollouts(self, requests: list[dict]) -> None:
        """Every worker starts collecting a rollout of its arenas (see
        rollout.remote_rollout); `finish_rollouts` collects the replies. In
        between the caller is free: that is where the learner updates."""
        for conn, request in zip(self._conns, requests, strict=True):
            conn.send(("rollout", request))

    def finish_rollouts(self) -> list[dict]:
        return [self._receive(c) for c in self._conns]

    def snapshot(self) -> list:
        return self._all("snapshot", [None] * len(self._conns))

    def restore(self, snapshots: list) -> None:
        if len(snapshots) != len(self._conns):
            raise WorkerError(
                f"snapshot holds {len(snapshots)} workers, this pool has {len(self._conns)};"
                " resume with the run's own run.workers"
            )
        self._all("restore", snapshots)

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(("close", None))
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
        self._conns.clear()
        self._procs.clear()
