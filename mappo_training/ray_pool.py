"""Rollout workers as Ray actors (`swarm train --ray`); the learner stays on the driver.

`RayWorkerPool` is what `vec_env.WorkerPool` is to the Trainer, with actors
on a Ray cluster instead of local processes: each actor owns a batched env of
K/W arenas (built by the same factory, with the same per-worker seed) and a
CPU copy of the actors, and collects whole rollouts (`rollout.remote_rollout`).
The actors' weights go out once per update through the object store (one
`ray.put`, the same reference to every actor); rollouts come back as numpy.

A worker that dies (its actor killed, its node lost) is replaced by a new
actor, which restores the env as it was when the rollout began (every reply
carries a snapshot of its env) and collects the same rollout again from the
same request, RNG state included: the run goes on as if nothing happened, and
says so (`take_notices`, `fault_metrics`). `ray.max_worker_restarts`
replacements in a row stop the run with a WorkerError.

Ray itself is imported only when a pool is built (`require_ray`), and the
Trainer imports this module only for `--ray`: the default path never loads Ray.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from mappo_training.vec_env import WORKER_SEED_STRIDE, RolloutPool, WorkerError, describe
from swarm_contract.config import ConfigError

if TYPE_CHECKING:
    from mappo_training.experiment import RayConfig

MISSING_RAY = "--ray needs Ray: pip install -e '.[ray]'"


def require_ray():
    """The ray module, or a ConfigError that names the extra to install."""
    try:
        import ray
    except ImportError as err:
        raise ConfigError(MISSING_RAY) from err
    return ray


def writable(tree: Any) -> Any:
    """`tree` with every read-only array (how the object store hands arrays
    over: views of shared memory) copied, so torch may take them as they are."""
    if isinstance(tree, np.ndarray):
        return tree if tree.flags.writeable else tree.copy()
    if isinstance(tree, dict):
        return {k: writable(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(writable(v) for v in tree)
    return tree


class RolloutWorker:
    """One Ray actor: a batch of arenas and a CPU copy of the actors."""

    def __init__(self, make_env, kwargs: dict[str, Any]) -> None:
        self.env = make_env(**kwargs)
        self.acting: dict = {}  # remote_rollout's actor copy, built on the first request

    def describe(self) -> dict[str, Any]:
        return describe(self.env)

    def rollout(self, request: dict[str, Any], weights: dict[str, np.ndarray]) -> dict[str, Any]:
        from mappo_training.rollout import remote_rollout

        # Arrays from the object store are read-only views of shared memory;
        # torch wants its own (the weights and the RNG state are small).
        weights = {k: np.array(v) for k, v in weights.items()}
        request = dict(writable(request), actors=weights)
        reply = remote_rollout(self.env, self.acting, request)
        # Where the next rollout starts: a replacement restores it to collect that one again.
        reply["snapshot"] = self._snapshot()
        return reply

    def reset(self, seed: int | None) -> tuple:
        obs, state = self.env.reset(seed=seed)
        return obs, state, self._snapshot()

    def step(self, actions: np.ndarray) -> tuple:
        return self.env.step(actions)

    def snapshot(self) -> Any:
        return self._snapshot()

    def restore(self, snapshot: Any) -> None:
        self.env.restore(snapshot)

    def _snapshot(self) -> Any:
        return self.env.snapshot() if self.env.supports_snapshot else None


class RayWorkerPool(RolloutPool):
    """K arenas across W Ray actors, with the interface the Trainer uses of WorkerPool."""

    def __init__(
        self,
        make_env,
        num_workers: int,
        arenas_per_worker: int,
        seed: int,
        *,
        ray_cfg: RayConfig,
        **kw,
    ) -> None:
        ray = require_ray()
        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            # No address: a local Ray with every core of this machine.
            ray.init(
                address=ray_cfg.address,
                include_dashboard=False,
                logging_level=logging.WARNING,
            )
        self._cfg = ray_cfg
        self._lost = (
            ray.exceptions.RayActorError,
            ray.exceptions.ActorUnavailableError,
            ray.exceptions.ObjectLostError,
        )
        self._actor_class = ray.remote(
            num_cpus=ray_cfg.num_cpus_per_worker,
            resources=dict(ray_cfg.worker_resources) or None,
            max_restarts=0,  # this pool replaces workers itself, restoring their env
        )(RolloutWorker)
        self._make_env = make_env
        self._kwargs = [
            dict(kw, num_arenas=arenas_per_worker, seed=seed + w * WORKER_SEED_STRIDE)
            for w in range(num_workers)
        ]
        self._actors = [self._spawn(w) for w in range(num_workers)]
        # Per worker: its env as the next rollout starts, and the rollout in flight.
        self._starts: list[Any] = [None] * num_workers
        self._requests: list[dict[str, Any] | None] = [None] * num_workers
        self._in_flight: list[Any] = []
        self._weights_ref = None
        self.restarts = 0
        self._restarts_in_a_row = 0
        self._notices: list[str] = []
        try:
            self._adopt(self._get_all([a.describe.remote() for a in self._actors], "starting"))
        except BaseException:
            self.close()
            raise

    # -- workers ------------------------------------------------------------ #

    def _spawn(self, w: int):
        return self._actor_class.remote(self._make_env, self._kwargs[w])

    def _get(self, refs: list) -> list:
        """Results of remote calls; a worker's own exception (a bug in the env,
        not a lost worker) as a WorkerError with its traceback."""
        try:
            return self._ray.get(refs)
        except self._ray.exceptions.RayTaskError as err:
            raise WorkerError(f"simulator worker failed:\n{err}") from err

    def _get_all(self, refs: list, doing: str) -> list:
        """`_get` outside a rollout, where a lost worker has nothing to collect
        again: the run stops, and resumes from its last checkpoint."""
        try:
            return self._get(refs)
        except self._lost as err:
            if doing == "starting":
                # Nothing trained yet, so no checkpoint to point at.
                raise WorkerError(
                    f"a rollout worker died while starting ({_reason(err)}): check that"
                    " every Ray node has this project and the env's packages installed,"
                    " and enough memory for its arenas"
                ) from err
            raise WorkerError(
                f"a rollout worker died while {doing} ({_reason(err)}); the last checkpoint"
                " is intact: continue the run with `swarm train --resume <run>`"
            ) from err

    def _recollect(self, w: int, cause: BaseException) -> dict[str, Any]:
        """Worker w died (`cause`) during its rollout: replace it, put its env back
        as it was when the rollout began, and collect the same rollout again;
        until one answers or ray.max_worker_restarts replacements in a row fail."""
        while True:
            reason = _reason(cause)
            self._restarts_in_a_row += 1
            limit = self._cfg.max_worker_restarts
            if self._restarts_in_a_row > limit:
                raise WorkerError(
                    f"rollout worker {w} died ({reason}) after {limit} replacement(s) in a row"
                    f" (ray.max_worker_restarts={limit}): the cluster loses workers faster than"
                    " they collect; check its nodes, or raise ray.max_worker_restarts"
                ) from cause
            with contextlib.suppress(Exception):
                self._ray.kill(self._actors[w])
            self._actors[w] = actor = self._spawn(w)
            self.restarts += 1
            self._notices.append(
                f"rollout worker {w} died ({reason}); replaced it and collected its rollout"
                f" again ({self.restarts} replacement(s) in this run so far)"
            )
            try:
                if self._starts[w] is not None:
                    self._get([actor.restore.remote(self._starts[w])])
                else:
                    # An env without snapshots: the rollout starts over from fresh episodes.
                    obs, state, _ = self._get([actor.reset.remote(None)])[0]
                    self._requests[w] = dict(self._requests[w], obs=obs, state=state)
                return self._get([actor.rollout.remote(self._requests[w], self._weights_ref)])[0]
            except self._lost as err:
                cause = err

    # -- the BatchedEnv interface ------------------------------------------- #

    def reset(self, seed: int | None = None):
        refs = [
            a.reset.remote(s) for a, s in zip(self._actors, self.worker_seeds(seed), strict=True)
        ]
        parts = self._get_all(refs, "resetting its arenas")
        self._starts = [p[2] for p in parts]
        return tuple(np.concatenate([p[i] for p in parts], axis=0) for i in range(2))

    def step(self, actions: np.ndarray):
        refs = [a.step.remote(x) for a, x in zip(self._actors, self.split(actions), strict=True)]
        parts = self._get_all(refs, "stepping")
        self._starts = self._get_all([a.snapshot.remote() for a in self._actors], "stepping")
        return self.merge_steps(parts)

    # -- whole rollouts ----------------------------------------------------- #

    def start_rollouts(self, requests: list[dict]) -> None:
        """Every worker starts a rollout (see WorkerPool.start_rollouts). The
        weights, the same in every request, travel once, through the object store."""
        weights = requests[0]["actors"]
        self._weights_ref = self._ray.put(weights)
        self._requests = [{k: v for k, v in r.items() if k != "actors"} for r in requests]
        self._in_flight = [
            a.rollout.remote(r, self._weights_ref)
            for a, r in zip(self._actors, self._requests, strict=True)
        ]

    def finish_rollouts(self) -> list[dict]:
        replies = []
        for w, ref in enumerate(self._in_flight):
            try:
                reply = self._get([ref])[0]
            except self._lost as err:
                reply = self._recollect(w, err)
            replies.append(writable(reply))
        self._in_flight = []
        self._weights_ref = None
        self._restarts_in_a_row = 0
        self._starts = [r.pop("snapshot") for r in replies]
        return replies

    def snapshot(self) -> list:
        # The replies' snapshots are the envs as they are now: no round trip.
        return list(self._starts)

    def restore(self, snapshots: list) -> None:
        if not isinstance(snapshots, list) and len(self._actors) == 1:
            # From in-process training (run.workers=1 without Ray): the same
            # arenas and seed as this one worker's, so its episodes carry on here.
            snapshots = [snapshots]
        if len(snapshots) != len(self._actors):
            raise WorkerError(
                f"snapshot holds {len(snapshots)} workers, this pool has {len(self._actors)};"
                " resume with the run's own run.workers"
            )
        self._get_all(
            [a.restore.remote(s) for a, s in zip(self._actors, snapshots, strict=True)],
            "restoring its arenas",
        )
        self._starts = list(snapshots)

    # -- faults ------------------------------------------------------------- #

    def fault_metrics(self) -> dict[str, float]:
        return {"charts/worker_restarts": float(self.restarts)}

    def take_notices(self) -> list[str]:
        notices, self._notices = self._notices, []
        return notices

    @property
    def actors(self) -> list:
        """The workers' actor handles (for fault tests: `ray.kill(pool.actors[0])`)."""
        return list(self._actors)

    def close(self) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)
        self._actors = []
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False


def _reason(err: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
