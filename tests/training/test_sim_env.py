"""The MAPPO task: observations, critic state, rewards, episodes, scenarios, config."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.sim import (
    ArenaLayout,
    BatchedSwarmEnv,
    Obstacle,
    RewardConfig,
    SimConfig,
    load_sim_config,
)
from mappo_training.sim.scenarios import draw_layout, required_arena_size
from swarm_contract.config import ConfigError

R = 0.105
FORWARD = np.array([1.0, 0.0], dtype=np.float32)


@pytest.fixture
def make_env():
    envs = []

    def make(num_arenas: int = 1, seed: int | None = 0, **cfg) -> BatchedSwarmEnv:
        env = BatchedSwarmEnv(SimConfig(**cfg), num_arenas=num_arenas, seed=seed)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


def fixed(env: BatchedSwarmEnv, starts, goals, obstacles=()) -> ArenaLayout:
    return ArenaLayout(
        env.arena_size,
        np.asarray(starts, dtype=float),
        np.asarray(goals, dtype=float),
        tuple(obstacles),
        robot_radius=R,
        goal_tolerance=env.cfg.goal_tolerance,
    )


def run(env: BatchedSwarmEnv, actions, steps: int):
    """Step with the same actions (K, N, 2) `steps` times; returns the step results."""
    actions = np.broadcast_to(np.asarray(actions, np.float32), (env.num_arenas, env.num_robots, 2))
    return [env.step(actions) for _ in range(steps)]


# --------------------------------------------------------------------------- #
# Shapes and the API the trainer relies on.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("state_mode", ["global", "agent_specific"])
def test_reset_and_step_return_the_documented_shapes(make_env, state_mode):
    env = make_env(num_arenas=3, num_robots=4, scan_stack=2, state_mode=state_mode)
    assert env.action_dim == 2 and env.obs_dim == 24 * 2 + 5 == env.contract.obs_dim
    obs, state = env.reset()
    assert obs.shape == (3, 4, env.obs_dim) and obs.dtype == np.float32
    assert state.shape == (3, 4, env.state_dim) and state.dtype == np.float32
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 4, 2)).astype(np.float32)
    obs, state, reward, terminated, truncated, info = env.step(actions)
    assert reward.shape == (3, 4) and reward.dtype == np.float32
    assert terminated.shape == truncated.shape == (3,) and terminated.dtype == bool
    for key in ("active", "arrived", "collided"):
        assert info[key].shape == (3, 4) and info[key].dtype == bool
    assert info["final_obs"].shape == obs.shape and info["final_state"].shape == state.shape
    assert np.all(np.abs(obs) <= 1.0) and np.all(np.abs(state) <= 1.0)
    assert np.all(reward == reward[:, :1]), "team reward: the same for every robot"


def test_global_state_is_identical_per_arena_and_agent_specific_adds_obs_and_index(make_env):
    env = make_env(num_arenas=2, num_robots=3)
    _, state = env.reset()
    assert env.state_dim == 9 * 3
    assert np.all(state == state[:, :1])
    specific = make_env(num_arenas=2, num_robots=3, state_mode="agent_specific")
    obs, state = specific.reset()
    assert specific.state_dim == specific.obs_dim + 9 * 3 + 3
    assert np.array_equal(state[..., : specific.obs_dim], obs)
    assert np.array_equal(state[0, :, -3:], np.eye(3))


def test_critic_state_holds_poses_goals_and_arrived_flags_normalised(make_env):
    env = make_env(num_robots=2)
    env.reset(layouts=[fixed(env, [[1.0, 0.5, math.pi / 2], [-1.0, 0.0, 0.0]], [[1, 1], [-1, 1]])])
    _, state, *_ = env.step(np.zeros((1, 2, 2), np.float32))
    size = env.arena_size
    robot0 = state[0, 0, :9]
    assert robot0[:2] == pytest.approx([1.0 / size, 0.5 / size])
    assert robot0[2:4] == pytest.approx([0.0, 1.0], abs=1e-6)  # cos, sin of yaw
    assert robot0[6:8] == pytest.approx([1.0 / size, 1.0 / size])
    assert robot0[8] == 0.0


def test_step_before_reset_and_wrong_action_shapes_are_refused(make_env):
    env = make_env(num_robots=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((1, 2, 2)))
    env.reset()
    with pytest.raises(ValueError, match=r"expected \(1, 2, 2\)"):
        env.step(np.zeros((2, 2)))


# --------------------------------------------------------------------------- #
# Invariance and determinism.
# --------------------------------------------------------------------------- #


def test_rotating_and_translating_the_world_leaves_every_observation_unchanged(make_env):
    # A large arena keeps the (axis-aligned) walls out of lidar range, so the
    # whole visible world (robots, goals, obstacles) can be turned and moved.
    env = make_env(num_arenas=2, num_robots=3, arena_size=20.0, scan_stack=2)
    original = fixed(
        env,
        [[0.0, 0.0, 0.3], [0.8, 0.6, 2.0], [-0.7, 0.9, -1.0]],
        [[2.0, 1.0], [-1.5, -1.0], [0.5, -2.0]],
        [
            Obstacle("cylinder", x=1.0, y=-0.6, radius=0.25),
            Obstacle("box", x=-1.2, y=-0.3, half_x=0.4, half_y=0.15, yaw=0.5),
        ],
    )
    moved = original.moved(rotation=2.1, dx=3.0, dy=-2.5)
    obs, _ = env.reset(layouts=[original, moved])
    assert np.allclose(obs[0], obs[1], atol=1e-4)
    rng = np.random.default_rng(3)
    for _ in range(25):
        action = rng.uniform(-1, 1, (1, 3, 2)).astype(np.float32)
        obs, _, reward, *_ = env.step(np.repeat(action, 2, axis=0))
        assert np.allclose(obs[0], obs[1], atol=1e-4)
        assert reward[0, 0] == pytest.approx(reward[1, 0], abs=1e-5)
    assert obs[0, :, :24].min() < 0.5, "the robots did see something nearby"


def test_same_seed_gives_the_same_trajectory_and_another_seed_does_not(make_env):
    actions = np.random.default_rng(7).uniform(-1, 1, (60, 2, 4, 2)).astype(np.float32)

    def trajectory(seed):
        env = make_env(num_arenas=2, seed=seed, num_robots=4, num_obstacles=2, max_steps=25)
        env.reset()
        out = []
        for a in actions:
            obs, _, reward, *_ = env.step(a)
            out.append((env.poses(), obs, reward))
        return out

    first, second, other = trajectory(11), trajectory(11), trajectory(12)
    for (p1, o1, r1), (p2, o2, r2) in zip(first, second, strict=True):
        assert np.array_equal(p1, p2) and np.array_equal(o1, o2) and np.array_equal(r1, r2)
    assert not np.array_equal(first[0][0], other[0][0])


def test_reset_with_a_seed_replays_the_same_episodes(make_env):
    env = make_env(num_arenas=2, num_robots=4)
    env.reset(seed=5)
    starts = [env.arena_layout(a).starts.copy() for a in range(2)]
    env.reset()
    env.reset(seed=5)
    assert all(np.array_equal(env.arena_layout(a).starts, starts[a]) for a in range(2))


def test_snapshot_restore_continues_exactly(make_env):
    env = make_env(num_arenas=2, num_robots=3, max_steps=15)
    env.reset()
    actions = np.random.default_rng(1).uniform(-1, 1, (40, 2, 3, 2)).astype(np.float32)
    for a in actions[:10]:
        env.step(a)
    saved = env.snapshot()
    expected = [env.step(a)[:3] for a in actions[10:]]
    env.restore(saved)
    for a, (obs, state, reward) in zip(actions[10:], expected, strict=True):
        got = env.step(a)
        assert np.array_equal(got[0], obs) and np.array_equal(got[1], state)
        assert np.array_equal(got[2], reward)


def test_a_snapshot_from_before_the_episode_tracker_still_resumes_exactly(make_env):
    env = make_env(num_arenas=2, num_robots=3, max_steps=15)
    env.reset()
    actions = np.random.default_rng(2).uniform(-1, 1, (30, 2, 3, 2)).astype(np.float32)
    for a in actions[:10]:
        env.step(a)
    saved = env.snapshot()
    # The layout older checkpoints hold: the episode arrays beside the world's.
    episodes = saved.pop("episodes")
    team_return = episodes.pop("team_return")
    old = {**saved, **episodes, "return": team_return, "parked": env.parked}
    expected = [env.step(a) for a in actions[10:]]
    env.restore(old)
    for a, want in zip(actions[10:], expected, strict=True):
        got = env.step(a)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[2], want[2])
        np.testing.assert_equal(got[5]["episodes"], want[5]["episodes"])


# --------------------------------------------------------------------------- #
# Team task: arrival, parking, collisions, time limit, episode statistics.
# --------------------------------------------------------------------------- #


def test_robots_that_arrive_park_and_the_episode_ends_when_all_have(make_env):
    env = make_env(num_robots=2, goal_tolerance=0.1)
    # Robot 0 is 0.5 m from its goal, robot 1 is 1.0 m from its goal; both head straight at it.
    env.reset(layouts=[fixed(env, [[0, 0, 0], [0, 1, 0]], [[0.5, 0], [1.0, 1]])])
    arrived_at, parked_seen = {}, False
    for step in range(1, 100):
        obs, state, reward, terminated, truncated, info = env.step(np.array([[FORWARD, FORWARD]]))
        for robot in np.flatnonzero(info["arrived"][0]):
            arrived_at[int(robot)] = step
        if 0 in arrived_at and step > arrived_at[0]:
            parked_seen |= not info["active"][0, 0]
            assert info["final_poses"][0, 0, 0] == pytest.approx(0.5 - 0.1, abs=0.03)
        if terminated[0]:
            break
    # 0.4 m to within tolerance at 0.22 m/s: 19 steps; 0.9 m: 41 steps.
    assert arrived_at == {0: 19, 1: 41}
    assert parked_seen, "robot 0 stopped driving after it arrived"
    assert not truncated[0]
    (episode,) = info["episodes"]
    assert episode["success"] and episode["arrived_fraction"] == 1.0
    assert episode["length"] == 41 and episode["collisions"] == 0
    assert episode["time_to_goal"] == pytest.approx((19 + 41) / 2 * 0.1)
    assert episode["path_efficiency"] == pytest.approx(1.0, abs=0.06)
    assert episode["reverse_share"] == pytest.approx(0.0, abs=1e-3)
    assert info["final_state"][0, 0, 8] == 1.0 and info["final_state"][0, 0, 17] == 1.0


def test_the_episode_says_how_much_was_driven_backwards(make_env):
    env = make_env(num_robots=2, goal_tolerance=0.1)
    # Robot 0 backs up to a goal behind it; robot 1 drives forwards as far.
    env.reset(layouts=[fixed(env, [[0, 0, 0], [0, 1, 0]], [[-0.5, 0], [0.5, 1]])])
    for _ in range(100):
        *_, terminated, _, info = env.step(np.array([[-FORWARD, FORWARD]]))
        if terminated[0]:
            break
    (episode,) = info["episodes"]
    assert episode["success"]
    assert episode["reverse_share"] == pytest.approx(0.5, abs=0.03)


def test_arrival_is_rewarded_and_collisions_and_time_are_penalised(make_env):
    weights = dict(progress=0.0, arrival=3.0, robot_collision=0.0, static_collision=2.0, time=0.5)
    env = make_env(num_robots=2, goal_tolerance=0.1, reward=RewardConfig(**weights))
    half = env.arena_size / 2
    # Robot 0 arrives on the first step; robot 1 pushes against a wall.
    env.reset(
        layouts=[
            fixed(env, [[0, 0, 0], [half - R - 0.01, 1, 0]], [[0.1, 0], [-1.0, -1.0]]),
        ]
    )
    _, _, reward, _, _, info = env.step(np.array([[FORWARD, FORWARD]]))
    assert info["arrived"][0].tolist() == [True, False]
    assert info["collided"][0].tolist() == [False, True]
    assert info["static_collided"][0, 1] and not info["robot_collided"][0, 1]
    # mean over robots of (arrival - time) and (-static collision - time)
    assert reward[0, 0] == pytest.approx(((3.0 - 0.5) + (-2.0 - 0.5)) / 2)
    _, _, reward, _, _, _ = env.step(np.array([[FORWARD, FORWARD]]))
    assert reward[0, 0] == pytest.approx((-2.0 - 0.5) / 2), "parked robot 0 costs no time"


def test_progress_towards_the_goal_is_rewarded_and_moving_away_is_not(make_env):
    weights = dict(progress=10.0, arrival=0.0, robot_collision=0.0, static_collision=0.0, time=0.0)
    env = make_env(num_robots=1, reward=RewardConfig(**weights))
    env.reset(layouts=[fixed(env, [[0, 0, 0]], [[1.5, 0]])])
    _, _, towards, *_ = env.step(np.array([[FORWARD]]))
    _, _, away, *_ = env.step(np.array([[-FORWARD]]))
    assert towards[0, 0] == pytest.approx(10.0 * 0.022, rel=1e-6)
    assert away[0, 0] == pytest.approx(-10.0 * 0.022, rel=1e-6)


def test_team_share_mixes_own_and_team_terms(make_env):
    weights = dict(progress=0.0, arrival=4.0, robot_collision=0.0, static_collision=0.0, time=0.0)
    env = make_env(
        num_robots=2, goal_tolerance=0.1, reward=RewardConfig(**weights, team_share=0.25)
    )
    env.reset(layouts=[fixed(env, [[0, 0, 0], [0, 1, 0]], [[0.1, 0], [-1.5, 1]])])
    _, _, reward, *_ = env.step(np.array([[FORWARD, FORWARD]]))
    # Robot 0 arrives (own 4, team mean 2): 0.25 * 2 + 0.75 * 4; robot 1 gets 0.25 * 2.
    assert reward[0].tolist() == pytest.approx([3.5, 0.5])


def test_proximity_penalty_grows_as_a_neighbour_comes_closer(make_env):
    weights = dict(progress=0.0, arrival=0.0, robot_collision=0.0, static_collision=0.0, time=0.0)
    reward_cfg = RewardConfig(**weights, proximity=1.0, proximity_gap=0.2)
    env = make_env(num_robots=2, reward=reward_cfg)
    rewards = []
    for gap in (0.3, 0.15, 0.05):
        centre = 2 * R + gap
        env.reset(layouts=[fixed(env, [[0, 0, 0], [centre, 0, 0]], [[-1.5, 1], [1.5, 1]])])
        _, _, reward, *_ = env.step(np.zeros((1, 2, 2), np.float32))
        rewards.append(reward[0, 0])
    assert rewards[0] == 0.0, "no penalty beyond proximity_gap"
    assert rewards[2] < rewards[1] < 0.0
    assert rewards[1] == pytest.approx(-(1.0 - 0.15 / 0.2), abs=1e-6)


def test_keep_right_penalises_closing_on_a_neighbour_ahead_and_to_the_right(make_env):
    weights = dict(progress=0.0, arrival=0.0, robot_collision=0.0, static_collision=0.0, time=0.0)
    env = make_env(num_robots=2, reward=RewardConfig(**weights, keep_right=1.0))
    goals = [[-1.5, 1.5], [1.5, -1.5]]

    def first_reward(neighbour, actions):
        env.reset(layouts=[fixed(env, [[0, 0, 0], neighbour], goals)])
        _, _, reward, *_ = env.step(np.array([actions], np.float32))
        return reward[0, 0]

    # Robot 0 faces +x; the neighbour is 0.6 m ahead, 0.2 m to its right, facing it.
    oncoming_right = [0.6, -0.2, math.pi]
    assert first_reward(oncoming_right, [FORWARD, FORWARD]) < -0.2
    # Mirrored to its left: the right way to pass, no penalty.
    assert first_reward([0.6, 0.2, math.pi], [FORWARD, FORWARD]) == 0.0
    # Both backing away from each other: not closing, no penalty.
    assert first_reward(oncoming_right, [-FORWARD, -FORWARD]) == 0.0
    # Beyond keep_right_range (1 m): no penalty.
    assert first_reward([1.3, -0.2, math.pi], [FORWARD, FORWARD]) == 0.0


def test_reverse_penalty_scales_with_backward_speed(make_env):
    weights = dict(progress=0.0, arrival=0.0, robot_collision=0.0, static_collision=0.0, time=0.0)
    env = make_env(num_robots=1, reward=RewardConfig(**weights, reverse=0.5))

    def reward_of(linear):
        env.reset(layouts=[fixed(env, [[0, 0, 0]], [[1.5, 1.5]])])
        for _ in range(5):  # let the wheels reach the commanded speed
            _, _, reward, *_ = env.step(np.array([[[linear, 0.0]]], np.float32))
        return reward[0, 0]

    assert reward_of(1.0) == 0.0, "driving forwards costs nothing"
    assert reward_of(-1.0) == pytest.approx(-0.5, rel=0.05)
    assert reward_of(-0.5) == pytest.approx(-0.25, rel=0.05)


def test_collision_ends_the_episode_only_when_configured(make_env):
    for end_on_collision in (False, True):
        env = make_env(num_robots=2, end_on_collision=end_on_collision)
        env.reset(layouts=[fixed(env, [[-0.3, 0, 0], [0.3, 0, math.pi]], [[1.5, 1], [-1.5, 1]])])
        results = run(env, [[FORWARD, FORWARD]], steps=10)
        collided = [r[5]["collided"][0].all() for r in results]
        ended = [r[3][0] for r in results]
        assert any(collided)
        first = collided.index(True)
        assert ended[first] == end_on_collision
        if end_on_collision:
            assert results[first][5]["episodes"][0]["success"] is False
            assert results[first][5]["episodes"][0]["robot_collisions"] == 2


def test_time_limit_truncates_keeps_the_final_observation_and_starts_anew(make_env):
    env = make_env(num_arenas=2, num_robots=2, max_steps=5)
    env.reset()
    for step in range(1, 6):
        obs, state, reward, terminated, truncated, info = env.step(np.zeros((2, 2, 2), np.float32))
        poses_before_reset = info["final_poses"]
        assert truncated.all() == (step == 5)
    assert not terminated.any()
    assert [e["length"] for e in info["episodes"]] == [5, 5]
    assert [e["arena"] for e in info["episodes"]] == [0, 1]
    assert all(math.isnan(e["time_to_goal"]) for e in info["episodes"])
    # Zero actions: the final poses are the old starts, the returned obs a new episode.
    assert not np.allclose(info["final_obs"], obs)
    assert not np.allclose(poses_before_reset, env.poses())
    assert np.allclose(info["final_state"][..., :2], poses_before_reset[:, :1, :2] / env.arena_size)


# --------------------------------------------------------------------------- #
# Scenarios.
# --------------------------------------------------------------------------- #


def test_circle_scenario_puts_goals_antipodal_so_everyone_meets_in_the_middle():
    cfg = SimConfig(num_robots=6, scenario="circle")
    layout = draw_layout(np.random.default_rng(0), cfg, 4.0, R)
    radius = np.linalg.norm(layout.starts[:, :2], axis=1)
    assert np.allclose(radius, radius[0])
    assert np.allclose(layout.goals, -layout.starts[:, :2])
    heading = np.stack([np.cos(layout.starts[:, 2]), np.sin(layout.starts[:, 2])], axis=1)
    assert np.allclose(heading, -layout.starts[:, :2] / radius[:, None])  # facing the centre


def test_start_jitter_moves_circle_starts_a_little_and_leaves_goals():
    exact = draw_layout(np.random.default_rng(0), SimConfig(num_robots=6, scenario="circle"), 4, R)
    cfg = SimConfig(num_robots=6, scenario="circle", start_jitter=0.02)
    jittered = draw_layout(np.random.default_rng(0), cfg, 4.0, R)
    offset = np.linalg.norm(jittered.starts[:, :2] - exact.starts[:, :2], axis=1)
    assert np.all(offset > 0) and np.all(offset < 0.1)
    np.testing.assert_array_equal(jittered.goals, exact.goals)
    with pytest.raises(ValueError, match="start_jitter"):
        SimConfig(scenario="circle", start_jitter=1.0)


def test_swap_scenario_groups_exchange_sides():
    cfg = SimConfig(num_robots=5, scenario="swap")
    layout = draw_layout(np.random.default_rng(1), cfg, 4.0, R)
    travel = layout.goals - layout.starts[:, :2]
    axis = np.abs(travel).sum(axis=0).argmax()  # the direction the groups cross in
    assert np.allclose(travel[:, 1 - axis], 0.0)
    sides = np.sign(layout.starts[:, axis])
    assert sorted([(sides < 0).sum(), (sides > 0).sum()]) == [2, 3]
    assert np.all(np.sign(layout.goals[:, axis]) == -sides)


@pytest.mark.parametrize("scenario", ["random", "circle", "swap"])
@pytest.mark.parametrize("num_robots", [1, 8, 32])
def test_scenarios_never_overlap_robots_and_the_arena_grows_to_fit(scenario, num_robots):
    cfg = SimConfig(num_robots=num_robots, scenario=scenario, num_obstacles=3)
    size = required_arena_size(cfg, R)
    assert size >= cfg.arena_size
    rng = np.random.default_rng(num_robots)
    for _ in range(3):
        layout = draw_layout(rng, cfg, size, R)
        for points in (layout.starts[:, :2], layout.goals):
            gaps = np.linalg.norm(points[:, None] - points[None], axis=-1)
            gaps[np.diag_indices(num_robots)] = np.inf
            assert gaps.min() >= cfg.min_separation - 1e-9
            assert np.abs(points).max() <= size / 2 - R - cfg.wall_clearance + 1e-9
            for o in layout.obstacles:
                assert o.clearance(points).min() >= R - 1e-9


def test_many_robots_in_one_env_start_and_step(make_env):
    env = make_env(num_arenas=2, num_robots=32, scenario="circle")
    assert env.arena_size > 4.0, "32 robots do not fit on the 4 m arena's circle"
    obs, _ = env.reset()
    obs, *_ = env.step(np.zeros((2, 32, 2), np.float32))
    assert obs.shape == (2, 32, env.obs_dim)


def test_random_scenario_keeps_goals_away_from_starts():
    cfg = SimConfig(num_robots=6, min_goal_distance=1.5)
    layout = draw_layout(np.random.default_rng(2), cfg, required_arena_size(cfg, R), R)
    assert np.linalg.norm(layout.goals - layout.starts[:, :2], axis=1).min() >= 1.5


# --------------------------------------------------------------------------- #
# Config errors name the field, the value and what would be valid.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "data, words",
    [
        ({"sim_scan_rays": 70}, ["sim_scan_rays=70", "multiple of num_beams=24", "72"]),
        ({"num_robots": 0}, ["num_robots=0", "1 to 64"]),
        ({"scenario": "ring"}, ["sim.scenario", "'ring'", "circle"]),
        ({"state_mode": "local"}, ["sim.state_mode", "agent_specific"]),
        ({"num_robts": 4}, ["sim.num_robts", "num_robots"]),
        ({"reward": {"arrival": -1.0}}, ["arrival=-1.0", ">= 0"]),
        ({"obstacles": [{"kind": "box", "half_x": 0.01}]}, ["half_x=0.01", "0.05"]),
        ({"min_goal_distance": 0.1}, ["min_goal_distance=0.1", "goal_tolerance"]),
    ],
)
def test_bad_config_values_are_named(data, words):
    with pytest.raises(ConfigError) as err:
        load_sim_config(data)
    for word in words:
        assert word in str(err.value)


def test_config_loads_from_yaml_and_round_trips(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text(
        "sim:\n  num_robots: 6\n  scenario: swap\n  reward: {arrival: 2.0}\n"
        "  obstacles: [{kind: cylinder, x: 0.0, y: 0.0, radius: 0.3}]\n"
    )
    cfg = load_sim_config(path)
    assert (cfg.num_robots, cfg.scenario, cfg.reward.arrival) == (6, "swap", 2.0)
    assert cfg.obstacles == [Obstacle("cylinder", 0.0, 0.0, radius=0.3)]
    from swarm_contract.config import to_dict

    assert load_sim_config(to_dict(cfg)) == cfg


def test_separation_too_small_for_the_robot_is_refused():
    with pytest.raises(ConfigError, match="min_separation=0.2"):
        BatchedSwarmEnv(SimConfig(min_separation=0.2))
