"""Generalised advantage estimation that tells terminations from truncations.

    delta_t = r_t + gamma * (1 - terminated_t) * V_next_t - V_t
    A_t     = delta_t + gamma * lambda * (1 - ended_t) * A_{t+1}

V_next_t is V_{t+1}, except where the episode was truncated at t: the arenas
auto-reset, so V_{t+1} belongs to a new episode, and the caller gives the value
of the state the old episode was cut off in instead ("bootstrap values"). A
termination bootstraps nothing. `ended = terminated | truncated` stops the
recursion, so no advantage ever mixes two episodes.
"""

from __future__ import annotations

import numpy as np


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    bootstrap_values: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Advantages, shape (T, *batch) like `rewards`.

    rewards, values, bootstrap_values: (T, *batch), e.g. (T, E, N).
    terminated, truncated: (T, *batch) or a leading part of it such as (T, E);
        missing trailing axes broadcast (an arena's end ends every robot in it).
    last_values: (*batch), the value of the state after the last step.
    bootstrap_values[t] is read only where truncated[t] and not terminated[t].
    Returns (the critic's targets) are these advantages + values, unnormalised.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    shape = rewards.shape
    for name, arr in (("values", values), ("bootstrap_values", bootstrap_values)):
        if np.shape(arr) != shape:
            raise ValueError(f"compute_gae: {name} has shape {np.shape(arr)}, rewards {shape}")
    if np.shape(last_values) != shape[1:]:
        raise ValueError(
            f"compute_gae: last_values has shape {np.shape(last_values)}, expected {shape[1:]}"
        )
    term = _broadcast_flags(terminated, shape, "terminated")
    trunc = _broadcast_flags(truncated, shape, "truncated")
    ended = term | trunc

    next_values = np.empty_like(values)
    next_values[:-1] = values[1:]
    next_values[-1] = last_values
    next_values = np.where(trunc, np.asarray(bootstrap_values, dtype=np.float64), next_values)

    deltas = rewards + gamma * (~term) * next_values - values
    advantages = np.zeros_like(values)
    running = np.zeros(shape[1:], dtype=np.float64)
    for t in reversed(range(shape[0])):
        running = deltas[t] + gamma * lam * (~ended[t]) * running
        advantages[t] = running
    return advantages.astype(np.float32)


def _broadcast_flags(flags: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    flags = np.asarray(flags, dtype=bool)
    if flags.shape != shape[: flags.ndim]:
        raise ValueError(
            f"compute_gae: {name} has shape {flags.shape}; expected {shape} or a leading part"
            f" of it such as {shape[:2]}"
        )
    return np.broadcast_to(flags.reshape(flags.shape + (1,) * (len(shape) - flags.ndim)), shape)
