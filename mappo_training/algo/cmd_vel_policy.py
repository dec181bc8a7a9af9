"""The deterministic policy a robot runs, as one torch module (what gets exported).

Observation in, velocity command out: the actor's mean action, clipped to
[-1, 1] and scaled by the speed limits, with a shared actor's robot id folded
in as a constant. Nothing here needs the global state.
"""

from __future__ import annotations

import torch
from torch import nn


class CmdVelPolicy(nn.Module):
    """obs (B, obs_dim) -> cmd_vel (B, 2) = (v m/s, w rad/s)."""

    def __init__(
        self, actor: nn.Module, one_hot: torch.Tensor | None, max_linear: float, max_angular: float
    ) -> None:
        super().__init__()
        self.actor = actor
        self.with_id = one_hot is not None
        self.register_buffer("one_hot", one_hot if one_hot is not None else torch.zeros(0))
        self.register_buffer("limits", torch.tensor([max_linear, max_angular]))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs
        if self.with_id:
            x = torch.cat([x, self.one_hot.expand(x.shape[0], -1)], dim=-1)
        return torch.clamp(self.actor(x), -1.0, 1.0) * self.limits
