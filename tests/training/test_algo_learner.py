"""MAPPOLearner as the trainer and the exporter use it: acting, updating, resuming."""

from __future__ import annotations

import copy
import io
import time

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

import torch

from mappo_training.algo import ActionSpec, AlgoConfig, MAPPOLearner, RolloutBuffer

BOX = ActionSpec(kind="box", dim=2)
SMALL = {"hidden_sizes": [32, 32], "epochs": 2, "num_minibatches": 2}


# Tiny networks: a second intra-op thread only adds contention on 2 cores.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_learner(obs_dims=(6, 6, 6), specs=None, state_dim=8, seed=0, **cfg) -> MAPPOLearner:
    specs = list(specs or [BOX] * len(obs_dims))
    return MAPPOLearner(
        AlgoConfig(**{**SMALL, **cfg}), list(obs_dims), specs, state_dim=state_dim, seed=seed
    )


def rollout(learner: MAPPOLearner, T=6, E=4, seed=0, active=None) -> RolloutBuffer:
    """A buffer of random experience acted by `learner`, returns computed.

    Arena 0 truncates at t=2 and arena 1 terminates at t=3, so the batch holds
    both kinds of episode end; `active` (T, E, N) marks finished robots.
    """
    rng = np.random.default_rng(seed)
    N, D, S, A = learner.num_agents, learner.obs_dim, learner.state_dim, learner.act_dim
    buf = RolloutBuffer(T, E, N, obs_dim=D, state_dim=S, act_dim=A)
    for t in range(T):
        obs = rng.normal(size=(E, N, D)).astype(np.float32)
        state = rng.normal(size=(E, S)).astype(np.float32)
        actions, logp = learner.act(obs)
        terminated = np.zeros(E, bool)
        truncated = np.zeros(E, bool)
        truncated[0] = t == 2
        terminated[1] = t == 3
        buf.add(
            t,
            obs=obs,
            state=state,
            actions=actions,
            logp=logp,
            values=learner.value(state, obs),
            rewards=rng.normal(size=(E, N)).astype(np.float32),
            terminated=terminated,
            truncated=truncated,
            active=None if active is None else active[t],
            bootstrap_values=rng.normal(size=(E, N)).astype(np.float32),
        )
    buf.compute_returns_and_advantages(np.zeros((E, N), np.float32), 0.99, 0.95)
    return buf


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def exported_action(learner: MAPPOLearner, i: int, robot_obs: np.ndarray) -> np.ndarray:
    """What the exporter's graph computes for robot i: actor_for(i)(agent_input(i, obs))."""
    with torch.no_grad():
        return learner.actor_for(i)(learner.agent_input(i, robot_obs)).numpy()


# --------------------------------------------------------------------------- #
# Which actor drives which robot.
# --------------------------------------------------------------------------- #


def test_one_shared_actor_tells_robots_apart_by_their_id():
    learner = make_learner()
    assert len(learner.actors) == 1
    assert learner.actor_for(0) is learner.actor_for(2)
    obs = np.random.default_rng(0).normal(size=(5, 1, 6)).astype(np.float32).repeat(3, axis=1)

    x = learner.agent_input(1, obs[:, 1])
    assert x.shape == (5, 6 + 3)
    np.testing.assert_array_equal(x[:, 6:].numpy(), np.tile([0.0, 1.0, 0.0], (5, 1)))

    actions, _ = learner.act(obs, deterministic=True)
    for i in range(3):
        np.testing.assert_allclose(actions[:, i], exported_action(learner, i, obs[:, i]), atol=1e-6)
    assert not np.allclose(actions[:, 0], actions[:, 1]), "same obs, different id, same action"


def test_per_robot_actors_learn_only_from_their_own_robot():
    learner = make_learner(share_actor=False)
    assert len({id(learner.actor_for(i)) for i in range(3)}) == 3
    assert len(learner.actor_optimizers) == 3
    assert learner.agent_input(0, np.zeros((1, 6))).shape == (1, 6), "no id without sharing"

    active = np.ones((6, 4, 3), bool)
    active[:, :, 1] = False  # robot 1 never acts in this batch
    before = [params(learner.actor_for(i)) for i in range(3)]
    learner.update(rollout(learner, active=active))
    after = [params(learner.actor_for(i)) for i in range(3)]
    assert same(before[1], after[1]), "robot 1's actor moved without any robot-1 data"
    assert not same(before[0], after[0]) and not same(before[2], after[2])


def test_the_critic_learns_only_from_its_own_loss():
    learner = make_learner(value_coef=0.0)
    critic_before, actor_before = params(learner.critic), params(learner.actors[0])
    learner.update(rollout(learner))
    assert same(critic_before, params(learner.critic))
    assert not same(actor_before, params(learner.actors[0]))


def test_discrete_actions_are_indices_with_their_log_probabilities():
    pick = ActionSpec(kind="discrete", n=5)
    learner = make_learner(specs=[pick] * 3)
    obs = np.random.default_rng(1).normal(size=(64, 3, 6)).astype(np.float32)
    actions, logp = learner.act(obs)
    assert actions.shape == (64, 3, 1)
    index = actions[..., 0]
    assert np.array_equal(index, np.round(index)) and index.min() >= 0 and index.max() <= 4
    with torch.no_grad():
        logits = learner.actors[0].logits(learner.agent_input(2, obs[:, 2]))
        expected = torch.log_softmax(logits, -1).gather(-1, torch.as_tensor(index[:, 2:3]).long())
    np.testing.assert_allclose(logp[:, 2], expected[:, 0].numpy(), rtol=1e-5)

    greedy, _ = learner.act(obs, deterministic=True)
    np.testing.assert_array_equal(greedy[:, 2, 0], logits.argmax(-1).numpy())
    np.testing.assert_array_equal(greedy[:, 2], exported_action(learner, 2, obs[:, 2]))

    metrics = learner.update(rollout(learner))
    assert np.isnan(metrics["charts/action_std"]) and np.isfinite(metrics["losses/policy_loss"])


def test_heterogeneous_robots_get_separate_actors_over_padded_arrays():
    # Robot 0: 3 obs columns and 2 continuous actions; robots 1, 2: 5 columns, 4 choices.
    pick = ActionSpec(kind="discrete", n=4)
    learner = make_learner(obs_dims=(3, 5, 5), specs=[BOX, pick, pick])
    assert len(learner.actors) == 2 and learner.actor_for(1) is learner.actor_for(2)
    assert learner.actor_for(0) is not learner.actor_for(1)
    assert (learner.obs_dim, learner.act_dim) == (5, 2)

    obs = np.random.default_rng(2).normal(size=(8, 3, 5)).astype(np.float32)
    actions, _ = learner.act(obs, deterministic=True)
    assert actions.shape == (8, 3, 2)
    assert np.all(actions[:, 1:, 1] == 0.0), "discrete robots fill column 0 only"
    padded = obs.copy()
    padded[:, 0, 3:] = 99.0  # robot 0's padding columns
    np.testing.assert_array_equal(learner.act(padded, deterministic=True)[0], actions)
    for i in range(3):
        np.testing.assert_allclose(
            actions[:, i, : learner.action_specs[i].width],
            exported_action(learner, i, obs[:, i, : learner.obs_dims[i]]),
            atol=1e-6,
        )
    metrics = learner.update(rollout(learner))
    assert all(np.isfinite(v) for k, v in metrics.items() if k != "charts/action_std")


# --------------------------------------------------------------------------- #
# Death masking.
# --------------------------------------------------------------------------- #


def test_finished_robots_do_not_influence_the_update():
    """Whatever sits in a finished robot's rows (stale obs, ignored actions with
    absurd log-probs, team rewards) leaves the update bitwise unchanged."""
    T, E = 6, 4
    active = np.ones((T, E, 3), bool)
    active[3:, :, 2] = False  # robot 2 arrives at t=2 in every arena
    active[3:, 0, 2] = True  # ...except arena 0, which truncates at t=2 and resets

    def updated(death_mask: bool, garbage: float | None) -> list[torch.Tensor]:
        learner = make_learner(death_mask=death_mask)
        buf = rollout(learner, T, E, active=active)
        if garbage is not None:
            dead = ~active
            for arr in (buf.logp, buf.values, buf.rewards):
                arr[dead] = garbage
            buf.obs[dead] = garbage
            buf.actions[dead] = garbage
            buf.compute_returns_and_advantages(np.zeros((E, 3)), 0.99, 0.95)
        learner.update(buf)
        return params(learner.actors[0]) + params(learner.critic)

    assert same(updated(True, None), updated(True, 1e4))
    assert not same(updated(False, None), updated(False, 1e4))


# --------------------------------------------------------------------------- #
# Acting with a frozen copy while the learner updates (the trainer's overlap).
# --------------------------------------------------------------------------- #


def test_frozen_actors_keep_acting_as_before_the_update():
    learner = make_learner(seed=0)
    obs = np.random.default_rng(5).normal(size=(4, 3, 6)).astype(np.float32)
    frozen = learner.frozen_actors()
    before = learner.act(obs, deterministic=True)[0]
    learner.update(rollout(learner, seed=1))
    np.testing.assert_array_equal(learner.act(obs, deterministic=True, actors=frozen)[0], before)
    assert not np.array_equal(learner.act(obs, deterministic=True)[0], before)


def test_a_stale_update_of_fresh_data_is_plain_ppo():
    """Decoupled PPO reduces to PPO when the behaviour policy is the current one:
    the proximal log-probs equal the stored ones and every weight is 1."""
    plain, decoupled = make_learner(seed=0), make_learner(seed=0)
    batch = rollout(plain, seed=1)
    m_plain = plain.update(copy.deepcopy(batch))
    m_decoupled = decoupled.update(batch, stale=True)
    for a, b in zip(params(plain.actors[0]), params(decoupled.actors[0]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert m_decoupled["losses/policy_loss"] == pytest.approx(m_plain["losses/policy_loss"], 1e-3)
    # Every weight is pi_now / pi_behaviour = 1; plain PPO has none to report.
    assert m_decoupled["losses/behaviour_weight"] == pytest.approx(1.0, abs=1e-5)
    assert "losses/behaviour_weight" not in m_plain


def test_a_stale_update_clips_around_the_current_policy():
    """Data from an older policy: plain PPO measures the ratio against that old
    policy, so many samples start outside the clip range and give no gradient;
    the decoupled update starts every ratio at 1 and moves the policy."""
    old = make_learner(seed=0, target_kl=None, actor_lr=3e-3)
    batch = rollout(old, seed=1)
    for extra in (2, 3):  # the learner moves on while `batch` waits
        old.update(rollout(old, seed=extra))
    plain, decoupled = copy.deepcopy(old), copy.deepcopy(old)
    m_plain = plain.update(copy.deepcopy(batch))
    m_decoupled = decoupled.update(batch, stale=True)
    assert m_plain["losses/clipfrac"] > m_decoupled["losses/clipfrac"]
    # Three updates old: the truncated weights discount part of the batch.
    assert m_decoupled["losses/behaviour_weight"] < 0.99


# --------------------------------------------------------------------------- #
# Checkpoints.
# --------------------------------------------------------------------------- #


def test_a_restored_learner_continues_bitwise_identically():
    first = make_learner(seed=0, target_kl=None)
    first.set_progress(0.3)
    first.update(rollout(first, seed=1))
    second_batch = rollout(first, seed=2)
    saved = io.BytesIO()  # a round trip through bytes, as a checkpoint file makes
    torch.save(first.state_dict(), saved)

    expected_metrics = first.update(copy.deepcopy(second_batch))
    obs = np.ones((4, 3, 6), np.float32)
    expected_actions = first.act(obs)[0]

    resumed = make_learner(seed=99)  # different init: everything must come from the state
    saved.seek(0)
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    metrics = resumed.update(second_batch)
    assert metrics == expected_metrics
    assert same(params(resumed.actors[0]), params(first.actors[0]))
    assert same(params(resumed.critic), params(first.critic))
    np.testing.assert_array_equal(resumed.act(obs)[0], expected_actions)


def test_a_state_for_other_robots_or_networks_is_refused():
    state = make_learner().state_dict()
    with pytest.raises(ValueError, match=r"obs_dims: saved \[6, 6, 6\], here \[6, 6\]"):
        make_learner(obs_dims=(6, 6)).load_state_dict(state)
    with pytest.raises(ValueError, match=r"algo.hidden_sizes: saved \[32, 32\], here \[16\]"):
        make_learner(hidden_sizes=[16]).load_state_dict(state)


# --------------------------------------------------------------------------- #
# Schedules, value normalisation, early stop.
# --------------------------------------------------------------------------- #


def test_learning_rate_and_entropy_anneal_with_progress():
    learner = make_learner(anneal_lr=True, anneal_entropy=True)
    learner.set_progress(0.75)
    metrics = learner.update(rollout(learner))
    assert metrics["charts/learning_rate"] == pytest.approx(0.25 * 3e-4)
    assert learner.critic_optimizer.param_groups[0]["lr"] == pytest.approx(0.25 * 3e-4)
    assert metrics["charts/entropy_coef"] == pytest.approx(0.25 * 0.01)
    with pytest.raises(ValueError, match=r"progress fraction 1.5 is outside \[0, 1\]"):
        learner.set_progress(1.5)


def test_action_std_stays_under_a_decaying_ceiling():
    # A large entropy bonus pushes the std up; the ceiling must still hold.
    learner = make_learner(std_decay=0.2, anneal_lr=False, entropy_coef=1.0, actor_lr=1e-2)
    learner.set_progress(0.5)  # ceiling 1.0 + (0.2 - 1.0) * 0.5 = 0.6
    metrics = learner.update(rollout(learner))
    assert metrics["charts/action_std"] == pytest.approx(0.6, rel=1e-5)
    learner.set_progress(1.0)
    obs = np.zeros((2000, 3, 6), np.float32)
    spread = learner.act(obs)[0] - learner.act(obs, deterministic=True)[0]
    assert spread.std() == pytest.approx(0.2, rel=0.05)


def test_values_leave_the_learner_in_real_units():
    learner = make_learner(value_norm=True)
    buf = rollout(learner)
    buf.rewards += 50.0
    buf.compute_returns_and_advantages(np.zeros((4, 3)), 0.99, 0.95)
    learner.update(buf)
    norm = learner.value_normalizer
    assert norm.mean > 50.0, "statistics follow the returns"
    state = np.random.default_rng(3).normal(size=(5, 8)).astype(np.float32)
    with torch.no_grad():
        raw = learner.critic(
            learner._critic_input(torch.as_tensor(state)[:, None, :].expand(5, 3, 8), None)
        )
    np.testing.assert_allclose(learner.value(state), raw.numpy() * norm.std + norm.mean, rtol=1e-5)
    # The same global state per robot may be given once per arena or once per robot.
    np.testing.assert_array_equal(
        learner.value(state), learner.value(np.repeat(state[:, None], 3, 1))
    )


def test_an_ippo_critic_needs_the_local_observations():
    learner = make_learner(critic_input="local")
    state = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError, match="critic_input='local' needs obs"):
        learner.value(state)
    assert learner.value(state, np.zeros((2, 3, 6), np.float32)).shape == (2, 3)
    learner.update(rollout(learner))


def test_target_kl_stops_the_update_early():
    full = make_learner(epochs=4, num_minibatches=4).update(rollout(make_learner()))
    assert full["charts/minibatch_steps"] == 16 and full["charts/early_stopped"] == 0.0
    learner = make_learner(epochs=4, num_minibatches=4, target_kl=1e-9)
    stopped = learner.update(rollout(learner))
    # The first minibatch always steps (the policy has not moved yet); the next one sees KL > 0.
    assert stopped["charts/minibatch_steps"] == 1 and stopped["charts/early_stopped"] == 1.0


# --------------------------------------------------------------------------- #
# Errors and speed.
# --------------------------------------------------------------------------- #


def test_misuse_is_reported_with_the_fix():
    learner = make_learner()
    with pytest.raises(ValueError, match=r"obs has shape \(4, 2, 6\); expected \(E, 3, >= 6\)"):
        learner.act(np.zeros((4, 2, 6), np.float32))
    buf = RolloutBuffer(2, 1, 3, obs_dim=6, state_dim=8, act_dim=2)
    with pytest.raises(RuntimeError, match="compute_returns_and_advantages"):
        learner.update(buf)
    with pytest.raises(ValueError, match=r"2 obs_dims but 1 action_specs"):
        MAPPOLearner(AlgoConfig(), [4, 4], [BOX], state_dim=3)
    with pytest.raises(ValueError, match=r"num_minibatches=8 exceeds the 4"):
        small = make_learner(num_minibatches=8)
        small.update(rollout(small, T=2, E=2))


def test_acting_for_a_batch_of_arenas_is_cheap():
    learner = MAPPOLearner(AlgoConfig(), [29] * 4, [BOX] * 4, state_dim=40, seed=0)
    obs = np.random.default_rng(0).normal(size=(16, 4, 29)).astype(np.float32)
    timings = []
    for _ in range(200):
        start = time.perf_counter()
        learner.act(obs)
        timings.append(time.perf_counter() - start)
    # About 0.3 ms here; the margin absorbs a loaded 2-core machine.
    assert np.median(timings) < 3e-3, f"act() median {np.median(timings) * 1e3:.2f} ms"


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_a_state_saved_on_another_device_loads():
    """A run trained on CUDA is evaluated and exported on a CPU: its action-noise
    RNG state has CUDA's layout, which a CPU generator cannot take as it is."""
    source = make_learner(seed=0)
    state = source.state_dict()
    state["rng"]["sample"] = torch.arange(16, dtype=torch.uint8)  # a CUDA generator's size
    target = make_learner(seed=1)
    target.load_state_dict(state)
    assert same(params(target.actors), params(source.actors))
    obs = np.ones((2, 3, 6), np.float32)
    np.testing.assert_array_equal(
        target.act(obs, deterministic=True)[0], source.act(obs, deterministic=True)[0]
    )
    # The noise is drawn from a stream seeded by the saved state: loading it
    # twice gives the same actions.
    again = make_learner(seed=2)
    again.load_state_dict(state)
    np.testing.assert_array_equal(target.act(obs)[0], again.act(obs)[0])


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale"])
@pytest.mark.parametrize("discrete", [False, True], ids=["box", "with-discrete"])
@CUDA
def test_an_update_on_cuda_matches_the_same_update_on_cpu(stale, discrete):
    specs = [BOX, BOX, ActionSpec(kind="discrete", n=3)] if discrete else None
    cpu = make_learner(specs=specs, seed=0)
    gpu = MAPPOLearner(
        AlgoConfig(**SMALL), [6] * 3, list(specs or [BOX] * 3), state_dim=8, device="cuda", seed=0
    )
    assert all(
        torch.equal(a, b.cpu()) for a, b in zip(params(cpu.actors), params(gpu.actors), strict=True)
    )
    buf = rollout(cpu)
    cpu_metrics = cpu.update(buf, stale=stale)
    gpu_metrics = gpu.update(buf, stale=stale)
    for name in ("losses/policy_loss", "losses/value_loss", "losses/approx_kl"):
        assert gpu_metrics[name] == pytest.approx(cpu_metrics[name], rel=1e-3, abs=1e-6), name
    for a, b in zip(
        params(cpu.actors) + params(cpu.critic),
        params(gpu.actors) + params(gpu.critic),
        strict=True,
    ):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-5)


@CUDA
def test_the_learner_runs_on_cuda():
    learner = MAPPOLearner(
        AlgoConfig(**SMALL), [6] * 3, [BOX] * 3, state_dim=8, device="cuda", seed=0
    )
    metrics = learner.update(rollout(learner))
    assert np.isfinite(metrics["losses/value_loss"])
    cpu = make_learner(seed=0)
    cpu.load_state_dict(learner.state_dict())
    obs = np.ones((2, 3, 6), np.float32)
    np.testing.assert_allclose(
        cpu.act(obs, deterministic=True)[0], learner.act(obs, deterministic=True)[0], atol=1e-5
    )
