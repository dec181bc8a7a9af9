"""One run, many team sizes: absent robot slots, the attention critic, the curriculum.

A swarm env with `team_sizes` draws each episode's team; the slots a smaller
team leaves empty must not move, see, earn, score or teach anything, and the
critic that reads every slot must not care about their order.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mappo_training.algo import ActionSpec, AlgoConfig, MAPPOLearner
from mappo_training.algo.buffer import RolloutBuffer
from mappo_training.algo.networks import AttentionCritic
from mappo_training.rollout import Rollout, collect, compute_targets
from mappo_training.sim.config import load_sim_config
from mappo_training.sim.curriculum import EpisodePlan
from mappo_training.sim.env import RELATIVE_FEATURES, BatchedSwarmEnv

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MIXED = {
    "num_robots": 6,
    "team_sizes": [2, 3, 6],
    "state_mode": "relative",
    "variants": [{"scenario": "random"}, {"scenario": "circle", "start_jitter": 0.05}],
}
BOX = ActionSpec(kind="box", dim=2, low=-1.0, high=1.0)
SMALL_ALGO = {
    "hidden_sizes": [32, 32],
    "epochs": 2,
    "num_minibatches": 2,
    "critic": "attention",
    "agent_id": "none",
}


def test_episodes_draw_every_team_size_and_absent_slots_sit_out():
    env = BatchedSwarmEnv(MIXED, num_arenas=8, seed=3)
    env.reset()
    present = env.world.present
    sizes = set(present.sum(axis=1).tolist())
    assert sizes <= {2, 3, 6} and len(sizes) >= 2
    start = env.poses()
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(40):
        obs, state, reward, _, _, info = env.step(rng.uniform(-1, 1, (8, 6, 2)))
        episodes += info["episodes"]
        absent = ~env.world.present
        # Absent slots: not acting, no reward, no lidar return, not moving.
        assert not info["active"][absent].any()
        assert (reward[absent] == 0).all()
        assert np.isinf(env.scan_ranges[absent]).all()
    absent = ~present
    assert np.array_equal(env.poses()[absent], start[absent])
    # Present robots did see something: arena walls are within 3.5 m.
    assert np.isfinite(env.scan_ranges[env.world.present]).any()


def test_an_episode_of_a_small_team_is_scored_on_that_team():
    cfg = {**MIXED, "team_sizes": [2], "variants": [], "max_steps": 5}
    env = BatchedSwarmEnv(cfg, num_arenas=2, seed=0)
    env.reset()
    ended = []
    for _ in range(5):
        *_, info = env.step(np.zeros((2, 6, 2)))
        ended += info["episodes"]
    assert len(ended) == 2
    for episode in ended:
        assert episode["robots"] == 2
        assert episode["arrived_fraction"] == 0.0  # standing still, out of 2 robots, not 6


def test_the_relative_state_zeroes_absent_slots_and_flags_self():
    env = BatchedSwarmEnv({**MIXED, "team_sizes": [3], "variants": []}, num_arenas=2, seed=1)
    obs, state = env.reset()
    assert state.shape == (2, 6, env.obs_dim + 6 * RELATIVE_FEATURES)
    assert np.array_equal(state[..., : env.obs_dim], obs)
    rows = state[..., env.obs_dim :].reshape(2, 6, 6, RELATIVE_FEATURES)
    assert (rows[:, :, 3:] == 0).all()  # slots 3..5 absent
    assert (rows[:, :3, :3, -2] == 1).all()  # present flag
    for i in range(3):
        assert rows[0, i, i, -1] == 1 and rows[0, i, i, :2].tolist() == [0.0, 0.0]


def test_the_attention_critic_ignores_robot_order_and_absent_slots():
    torch.manual_seed(0)
    obs_dim, slots, f = 9, 5, RELATIVE_FEATURES
    critic = AttentionCritic(obs_dim, slots, f, [32, 32])
    x = torch.randn(7, obs_dim + slots * f)
    rows = x[:, obs_dim:].reshape(7, slots, f)
    rows[..., -2] = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])  # 3 robots present
    rows[..., -1] = 0.0
    rows[:, 0, -1] = 1.0  # slot 0 is the robot itself
    x = torch.cat([x[:, :obs_dim], rows.reshape(7, -1)], dim=1)
    value = critic(x)

    permuted = rows[:, [2, 0, 4, 1, 3]]
    same = critic(torch.cat([x[:, :obs_dim], permuted.reshape(7, -1)], dim=1))
    torch.testing.assert_close(same, value, rtol=1e-5, atol=1e-6)

    garbage = rows.clone()
    garbage[:, 3:, :-2] = 1e3  # features of absent slots: never attended
    same = critic(torch.cat([x[:, :obs_dim], garbage.reshape(7, -1)], dim=1))
    torch.testing.assert_close(same, value, rtol=1e-5, atol=1e-6)

    moved = rows.clone()
    moved[:, 1, :2] += 0.5  # a present neighbour elsewhere changes the value
    assert not torch.allclose(critic(torch.cat([x[:, :obs_dim], moved.reshape(7, -1)], 1)), value)


def _collected(seed: int = 0):
    # Teams of 2 or 3 in 6 slots: every episode leaves slots absent.
    env = BatchedSwarmEnv({**MIXED, "team_sizes": [2, 3]}, num_arenas=4, seed=seed)
    learner = MAPPOLearner(
        AlgoConfig(**SMALL_ALGO), env.obs_dims, env.action_specs, env.state_dim, seed=seed
    )
    obs, state = env.reset()
    buf = RolloutBuffer(40, 4, 6, obs_dim=env.obs_dim, state_dim=env.state_dim, act_dim=2)
    rollout = Rollout(buf)
    collect(env, learner, rollout, obs, state, learner.actors, lambda eps: None, stale=False)
    env.close()
    return env, learner, rollout


def test_absent_robots_contribute_nothing_through_rollout_gae_and_update():
    """Garbage in every row and slot of absent robots leaves the update bitwise the same."""

    def updated(garbage: bool) -> list[torch.Tensor]:
        env, learner, rollout = _collected()
        buf = rollout.buffer
        slots = buf.state[..., env.obs_dim :].reshape(*buf.state.shape[:3], 6, RELATIVE_FEATURES)
        absent_slot = slots[..., -2] == 0
        absent_robot = ~buf.active & (slots[..., -1].max(axis=-1) == 0)
        assert absent_robot.any(), "the rollout should hold episodes of small teams"
        if garbage:
            for arr in (buf.logp, buf.rewards):
                arr[absent_robot] = 1e4
            buf.obs[absent_robot] = 1e4
            buf.actions[absent_robot] = 1e4
            buf.state[absent_robot] = 1e4
            features = slots.copy()
            features[..., :-2][absent_slot] = 1e4  # flags stay: the slot is still absent
            buf.state[..., env.obs_dim :] = features.reshape(*buf.state.shape[:3], -1)
        compute_targets(learner, rollout, 0.99, 0.95)
        learner.update(buf)
        return [
            p.detach().clone() for p in [*learner.actors.parameters(), *learner.critic.parameters()]
        ]

    clean, dirty = updated(False), updated(True)
    assert all(torch.equal(a, b) for a, b in zip(clean, dirty, strict=True))


def test_the_curriculum_promotes_on_success_and_survives_a_snapshot():
    cfg = load_sim_config(
        {
            "num_robots": 4,
            "curriculum": {
                "stages": [{"team_sizes": [2]}, {"team_sizes": [2, 4], "num_obstacles": 2}],
                "promote_at": 0.75,
                "window": 4,
            },
        }
    )
    plan = EpisodePlan(cfg)
    rng = np.random.default_rng(0)
    assert {plan.draw(rng).num_robots for _ in range(20)} == {2}
    for success in (True, False, True, True):
        promoted = plan.record(success)
    assert promoted and plan.stage == 1
    drawn = [plan.draw(rng) for _ in range(40)]
    assert {c.num_robots for c in drawn} == {2, 4}
    assert {c.num_obstacles for c in drawn} == {2}
    assert not plan.record(False)  # the last stage stays

    again = EpisodePlan(cfg)
    again.restore(plan.snapshot())
    assert again.stage == 1


def test_an_env_reports_the_stage_of_each_episode():
    cfg = {
        "num_robots": 3,
        "max_steps": 3,
        "curriculum": {"stages": [{"team_sizes": [3]}, {"team_sizes": [1]}], "promote_at": 0.01,
                       "window": 1},
    }  # fmt: skip
    env = BatchedSwarmEnv(cfg, num_arenas=1, seed=0)
    env.reset()
    stages = []
    for _ in range(9):
        *_, info = env.step(np.zeros((1, 3, 2)))
        stages += [(e["stage"], e["robots"]) for e in info["episodes"]]
    # Standing still never succeeds, so promote_at=0.01 over 1 episode never fires.
    assert stages == [(0, 3)] * 3


@pytest.mark.parametrize(
    ("sim", "message"),
    [
        ({"num_robots": 4, "team_sizes": [2, 8]}, r"team_sizes=\[2, 8\].*num_robots=4"),
        ({"variants": [{"num_beams": 12}]}, r"variants\[0\].*num_beams"),
        ({"curriculum": {"stages": [{"scan_stack": 2}]}}, r"curriculum.stages\[0\].*scan_stack"),
        ({"curriculum": {"stages": []}}, r"curriculum.stages"),
    ],
)
def test_bad_team_settings_name_the_key(sim, message):
    with pytest.raises(ValueError, match=message):
        load_sim_config(sim)


def test_an_attention_critic_needs_slot_rows():
    with pytest.raises(ValueError, match="state_mode=relative"):
        MAPPOLearner(AlgoConfig(**SMALL_ALGO), [10] * 3, [BOX] * 3, 17)
