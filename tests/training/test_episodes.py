"""Episode scores: what training logs, `swarm eval` prints and the sim bridge publishes.

The robots here move by hand (no simulator), so every number is worked out
in the comments: 0.1 m per step along x, goal_tolerance 0.15 m, 0.1 s steps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.sim import ArenaLayout
from mappo_training.sim.episodes import (
    ALL_ARRIVED,
    COLLISION,
    ONGOING,
    TIMEOUT,
    EpisodeRules,
    EpisodeTracker,
    summarize,
)
from mappo_training.train import EpisodeStats

STEP = np.array([0.1, 0.0, 0.0])
"""0.1 m forwards along x for a robot facing +x."""


def make_tracker(arenas: int = 1, robots: int = 2, **rules) -> EpisodeTracker:
    rules = {"goal_tolerance": 0.15, "control_period": 0.1, "max_steps": 100, **rules}
    return EpisodeTracker.for_arenas(arenas, robots, EpisodeRules(**rules))


def layout(starts, goals) -> ArenaLayout:
    return ArenaLayout(4.0, np.asarray(starts, float), np.asarray(goals, float))


class Arenas:
    """Hand-driven robots for a tracker: parked robots stay where they are."""

    def __init__(self, episodes: EpisodeTracker, layouts: list[ArenaLayout]) -> None:
        self.episodes = episodes
        self.poses = np.stack([lay.starts for lay in layouts])
        self.goals = np.stack([lay.goals for lay in layouts])
        for arena, lay in enumerate(layouts):
            episodes.start(arena, lay)

    def step(self, moves, robot_hit=None, static_hit=None):
        before = self.poses.copy()
        driving = ~self.episodes.arrived
        self.poses = before + np.broadcast_to(moves, before.shape) * driving[..., None]
        no_contact = np.zeros(driving.shape, bool)
        return self.episodes.record_step(
            before,
            self.poses,
            self.goals,
            no_contact if robot_hit is None else np.asarray(robot_hit),
            no_contact if static_hit is None else np.asarray(static_hit),
        )


# --------------------------------------------------------------------------- #
# One arena (the sim bridge's case).
# --------------------------------------------------------------------------- #


def test_every_robot_at_its_goal_without_contact_is_a_success():
    episodes = make_tracker()
    # Robot 0 is 0.5 m from its goal, robot 1 1.0 m; both drive straight at it.
    arenas = Arenas(episodes, [layout([[0, 0, 0], [0, 1, 0]], [[0.5, 0], [1.0, 1]])])
    arrivals, reasons = [], []
    for step in range(1, 10):
        record = arenas.step(STEP)
        if step == 1:
            assert record.progress[0] == pytest.approx([0.1, 0.1])
        if step == 5:
            assert record.progress[0] == pytest.approx([0.0, 0.1]), "parked robot 0 made none"
        episodes.add_rewards(np.array([[1.0, 3.0]]))
        arrivals += [(step, int(r)) for r in np.flatnonzero(record.arrived[0])]
        reasons.append(episodes.end_reasons(np.zeros((1, 2), bool))[0])
    # Within 0.15 m after 0.4 m (step 4) and 0.9 m (step 9).
    assert arrivals == [(4, 0), (9, 1)]
    assert reasons == [ONGOING] * 8 + [ALL_ARRIVED]
    summary = episodes.summary(0)
    assert summary["success"] is True and summary["arrived_fraction"] == 1.0
    assert summary["length"] == 9 and summary["collisions"] == 0
    assert summary["time_to_goal"] == pytest.approx((0.4 + 0.9) / 2)
    # Straight drives that arrive: 0.5 - 0.15 and 1.0 - 0.15; driven: 0.4 and 0.9.
    assert summary["path_efficiency"] == pytest.approx((0.35 / 0.4 + 0.85 / 0.9) / 2)
    assert summary["reverse_share"] == 0.0
    assert summary["return"] == pytest.approx(9 * 2.0), "the team's mean reward, summed"


def test_a_contact_spoils_success_and_ends_the_episode_only_when_the_rules_say():
    for end_on_collision in (False, True):
        episodes = make_tracker(end_on_collision=end_on_collision)
        arenas = Arenas(episodes, [layout([[0, 0, 0], [0, 1, 0]], [[0.3, 0], [0.3, 1]])])
        # Step 1: robot 1 grazes a wall; step 2: the two touch; both arrive in step 2.
        arenas.step(STEP, static_hit=[[False, True]])
        first = episodes.end_reasons(np.array([[False, True]]))[0]
        arenas.step(STEP, robot_hit=[[True, True]])
        second = episodes.end_reasons(np.array([[True, True]]))[0]
        assert first == (COLLISION if end_on_collision else ONGOING)
        assert second == ALL_ARRIVED, "all arrived outranks a collision in the same step"
        summary = episodes.summary(0)
        assert summary["success"] is False and summary["arrived_fraction"] == 1.0
        # Robot-steps in contact: one with the wall, two with each other.
        assert (summary["collisions"], summary["static_collisions"]) == (3, 1)
        assert summary["robot_collisions"] == 2


def test_an_episode_without_arrivals_times_out_with_no_time_to_goal():
    episodes = make_tracker(max_steps=3)
    arenas = Arenas(episodes, [layout([[0, 0, 0], [0, 1, 0]], [[1.5, 0], [1.5, 1]])])
    reasons = []
    for _ in range(3):
        arenas.step(np.zeros(3))
        reasons.append(episodes.end_reasons(np.zeros((1, 2), bool))[0])
    assert reasons == [ONGOING, ONGOING, TIMEOUT]
    summary = episodes.summary(0)
    assert summary["success"] is False and summary["arrived_fraction"] == 0.0
    assert summary["length"] == 3
    assert math.isnan(summary["time_to_goal"]) and math.isnan(summary["path_efficiency"])
    assert summary["reverse_share"] == 0.0, "nothing driven, nothing backwards"


def test_driving_backwards_is_the_share_of_the_teams_distance():
    episodes = make_tracker()
    # Both face +x; robot 0 backs up 0.3 m, robot 1 drives 0.3 m forwards.
    arenas = Arenas(episodes, [layout([[0, 0, 0], [0, 1, 0]], [[-1.5, 0], [1.5, 1]])])
    for _ in range(3):
        arenas.step(np.array([[-STEP, STEP]]))
    assert episodes.summary(0)["reverse_share"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- #
# K arenas (the training env's case).
# --------------------------------------------------------------------------- #


def test_arenas_keep_their_own_episodes_and_arrivals_are_per_robot():
    episodes = make_tracker(arenas=3, max_steps=4)
    near, far = [[0, 0, 0], [0, 1, 0]], [[0.2, 0], [1.5, 1]]
    arenas = Arenas(
        episodes,
        [
            layout(near, [[0.2, 0], [0.2, 1]]),  # both arrive in step 1
            layout(near, far),  # only robot 0 arrives
            layout(near, [[1.5, 0], [1.5, 1]]),  # nobody arrives
        ],
    )
    record = arenas.step(STEP, static_hit=[[False, False], [False, False], [True, False]])
    assert record.arrived.tolist() == [[True, True], [True, False], [False, False]]
    reasons = episodes.end_reasons(np.zeros((3, 2), bool))
    assert reasons.tolist() == [ALL_ARRIVED, ONGOING, ONGOING]
    # Arena 0 starts anew; the others go on to the time limit.
    episodes.start(0, layout(near, far))
    arenas.poses[0] = np.asarray(near, float)
    for _ in range(3):
        arenas.step(np.zeros(3))
    assert episodes.end_reasons(np.zeros((3, 2), bool)).tolist() == [ONGOING, TIMEOUT, TIMEOUT]
    assert [episodes.summary(a)["length"] for a in range(3)] == [3, 4, 4]
    assert [episodes.summary(a)["arrived_fraction"] for a in range(3)] == [0.0, 0.5, 0.0]
    assert [episodes.summary(a)["static_collisions"] for a in range(3)] == [0, 0, 1]
    assert episodes.arrived.tolist() == [[False, False], [True, False], [False, False]]


def test_a_restored_snapshot_continues_exactly():
    episodes = make_tracker(arenas=2)
    starts = [[0, 0, 0], [0, 1, 0]]
    arenas = Arenas(episodes, [layout(starts, [[0.4, 0], [1.5, 1]])] * 2)
    moves = np.random.default_rng(0).uniform(-0.05, 0.1, (8, 2, 2, 3))
    moves[..., 1] = 0.0  # along x only, turning as they go
    hits = np.random.default_rng(1).random((8, 2, 2)) < 0.3
    for move, hit in zip(moves[:4], hits[:4], strict=True):
        arenas.step(move, static_hit=hit)
        episodes.add_rewards(move[..., 0])
    saved, poses = episodes.snapshot(), arenas.poses.copy()

    def finish():
        for move, hit in zip(moves[4:], hits[4:], strict=True):
            arenas.step(move, static_hit=hit)
            episodes.add_rewards(move[..., 0])
        return [episodes.summary(a) for a in range(2)]

    expected, expected_arrays = finish(), episodes.snapshot()
    episodes.restore(saved)
    arenas.poses = poses
    np.testing.assert_equal(finish(), expected)  # NaN time to goal included
    np.testing.assert_equal(episodes.snapshot(), expected_arrays)
    # Arena 1's robot 0 arrived after the snapshot, arena 0's never did.
    assert saved["arrival_step"].max() == -1
    assert [e["arrived_fraction"] for e in expected] == [0.0, 0.5]
    # A snapshot is a copy: stepping on did not change it.
    assert saved["steps"].tolist() == [4, 4]

    fresh = make_tracker(arenas=2)
    fresh.restore(saved)
    assert fresh.snapshot().keys() == saved.keys()
    assert all(np.array_equal(fresh.snapshot()[k], saved[k]) for k in saved)


def test_a_snapshot_of_another_size_is_refused_by_name():
    saved = make_tracker(arenas=2).snapshot()
    with pytest.raises(ValueError, match=r"'start_distance'.*\(2, 2\).*\(3, 2\)"):
        make_tracker(arenas=3).restore(saved)
    # Snapshots from before reverse distance was tracked still restore.
    del saved["reverse_length"]
    older = make_tracker(arenas=2)
    older.restore(saved)
    assert older.reverse_length.tolist() == [[0.0, 0.0], [0.0, 0.0]]


# --------------------------------------------------------------------------- #
# summarize: the rates and means everybody reports.
# --------------------------------------------------------------------------- #

EPISODES = [
    {
        "success": True,
        "collisions": 0,
        "arrived_fraction": 1.0,
        "time_to_goal": 10.0,
        "path_efficiency": 0.9,
        "reverse_share": 0.0,
        "length": 100,
        "return": 20.0,
    },
    {
        "success": False,
        "collisions": 3,
        "arrived_fraction": 0.5,
        "time_to_goal": 14.0,
        "path_efficiency": 0.7,
        "reverse_share": 0.2,
        "length": 300,
        "return": -4.0,
    },
    {
        "success": False,
        "collisions": 0,
        "arrived_fraction": 0.0,
        "time_to_goal": math.nan,
        "path_efficiency": math.nan,
        "reverse_share": 0.1,
        "length": 300,
        "return": 2.0,
    },
    # As the sim bridge publishes it: JSON null for NaN, no return.
    {
        "success": False,
        "collisions": 1,
        "arrived_fraction": 0.0,
        "time_to_goal": None,
        "path_efficiency": None,
        "reverse_share": 0.3,
        "length": 50,
    },
]


def test_summarize_gives_rates_over_all_episodes_and_means_over_known_values():
    assert summarize(EPISODES) == pytest.approx(
        {
            "episodes": 4,
            "success_rate": 1 / 4,
            "collision_rate": 2 / 4,
            "arrived_fraction": (1.0 + 0.5) / 4,
            "time_to_goal_s": (10.0 + 14.0) / 2,
            "path_efficiency": (0.9 + 0.7) / 2,
            "reverse_share": (0.0 + 0.2 + 0.1 + 0.3) / 4,
            "episode_length": (100 + 300 + 300 + 50) / 4,
            "episodic_return": (20.0 - 4.0 + 2.0) / 3,
        }
    )


def test_summarize_of_episodes_without_task_scores_or_of_none():
    # Another environment (PettingZoo) reports only return and length: no
    # success rate at all (not 0%, which would read as a policy that always fails).
    other = summarize([{"return": 1.0, "length": 4}, {"return": 3.0, "length": 6, "success": None}])
    assert (other["success_rate"], other["collision_rate"]) == (None, 0.0)
    assert other["time_to_goal_s"] is None and other["episodic_return"] == 2.0
    nothing = summarize([])
    assert nothing["episodes"] == 0
    assert all(value is None for key, value in nothing.items() if key != "episodes")


def test_the_training_log_names_the_same_numbers_as_charts():
    stats = EpisodeStats()
    assert stats.summary() == {}, "no line of episode scalars before an episode ends"
    stats.add(EPISODES)
    logged = stats.summary()
    assert logged == pytest.approx(
        {
            "charts/episodic_return": 6.0,
            "charts/episodic_length": 187.5,
            "charts/success_rate": 0.25,
            "charts/collision_rate": 0.5,
            "charts/arrived_fraction": 0.375,
            "charts/time_to_goal": 12.0,
        }
    )
    stats.clear()
    stats.add(EPISODES[2:])
    assert math.isnan(stats.summary()["charts/time_to_goal"]), "NaN when no robot arrived"
