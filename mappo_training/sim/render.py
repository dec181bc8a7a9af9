"""Top-down pictures of a recorded episode: a PNG of the paths and an animated GIF.

Input is a recording (see recording.py), not a live simulator, so the demo,
`swarm eval --render` and the PettingZoo env all draw the same way. Drawing
uses matplotlib's Agg canvas directly (no pyplot, no display needed); the GIF
is written with Pillow.

Legend: walls are the black square, obstacles grey, each robot has a colour;
hollow circle = start, star in a dashed circle = goal (arrival tolerance),
line = path driven, filled disc = last pose with a heading tick, red cross =
collision.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

GIF_MAX_FRAMES = 60
FIGURE_INCHES = 5.0
DPI = 100


def episode_png(recording: dict[str, Any], out: str | Path) -> Path:
    """Write the whole episode's paths to `out` (PNG); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    scene = _Scene(recording)
    scene.show(len(scene.poses) - 1)
    Image.fromarray(scene.rgb()).save(out)
    return out


def episode_rgb(recording: dict[str, Any], upto: int | None = None) -> np.ndarray:
    """The picture as an (H, W, 3) uint8 array, paths up to step `upto` (default: all)."""
    scene = _Scene(recording)
    scene.show(len(scene.poses) - 1 if upto is None else upto)
    return scene.rgb()


def episode_gif(
    recording: dict[str, Any], out: str | Path, max_frames: int = GIF_MAX_FRAMES
) -> Path:
    """Write an animation of the episode to `out` (GIF), playing at real time
    (sped up when the episode has more than `max_frames` steps)."""
    from PIL import Image

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scene = _Scene(recording)
    last = len(scene.poses) - 1
    steps = np.unique(np.linspace(0, last, min(max_frames, last + 1)).round().astype(int))
    frames = []
    for t in steps:
        scene.show(int(t))
        frames.append(Image.fromarray(scene.rgb()))
    period = float(recording.get("period", 0.1))
    per_frame_ms = max(20, int(1000 * period * max(1, last) / max(1, len(steps) - 1)))
    frames[0].save(
        out,
        save_all=True,
        append_images=frames[1:] + [frames[-1]] * 10,  # linger on the end
        duration=per_frame_ms,
        loop=0,
    )
    return out


class _Scene:
    """A figure with the static arena drawn once and the moving parts updatable."""

    def __init__(self, recording: dict[str, Any]) -> None:
        from matplotlib import colormaps, patches
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self._patches = patches
        layout = recording["layout"]
        self.layout = layout
        self.poses = np.asarray(recording["poses"])
        self.collisions = list(recording.get("collisions", []))
        self.result = recording.get("result")
        self.period = float(recording.get("period", 0.1))
        n = self.poses.shape[1]
        cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "hsv"]
        self.colours = [cmap(i % cmap.N if n <= 20 else i / n) for i in range(n)]

        self.figure = Figure(figsize=(FIGURE_INCHES, FIGURE_INCHES), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.figure)
        ax = self.figure.add_subplot(1, 1, 1)
        self.ax = ax
        half = layout.arena_size / 2.0
        pad = 0.05 * layout.arena_size
        ax.set_xlim(-half - pad, half + pad)
        ax.set_ylim(-half - pad, half + pad)
        ax.set_aspect("equal")
        ax.set_xlabel("x [m]")
        ax.set_ylabel("y [m]")
        if getattr(layout, "walls", True):  # `swarm replay` of real robots: no walls to draw
            ax.add_patch(
                patches.Rectangle((-half, -half), 2 * half, 2 * half, fill=False, lw=3, ec="black")
            )
        for o in layout.obstacles:
            ax.add_patch(self._obstacle_patch(o))
        r = layout.robot_radius
        for i, colour in enumerate(self.colours):
            x, y, _ = layout.starts[i]
            ax.add_patch(patches.Circle((x, y), r, fill=False, ec=colour, lw=1.2))
            gx, gy = layout.goals[i]
            ax.add_patch(
                patches.Circle((gx, gy), layout.goal_tolerance, fill=False, ec=colour, ls="--")
            )
            ax.plot([gx], [gy], marker="*", ms=10, color=colour, zorder=3)
        self.trails = [ax.plot([], [], color=c, lw=1.5, zorder=2)[0] for c in self.colours]
        self.bodies = [
            ax.add_patch(patches.Circle((0, 0), r, color=c, alpha=0.85, zorder=4))
            for c in self.colours
        ]
        self.headings = [ax.plot([], [], color="black", lw=1.2, zorder=5)[0] for _ in self.colours]
        (self.crashes,) = ax.plot([], [], "x", color="red", ms=9, mew=2.5, zorder=6)
        ax.set_title("step 0", fontsize=10)
        self.figure.tight_layout()
        # Blitting: render the static arena once, then draw only what moves.
        self.moving = [*self.trails, *self.bodies, *self.headings, self.crashes, ax.title]
        for artist in self.moving:
            artist.set_animated(True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.figure.bbox)

    def _obstacle_patch(self, o):
        style = {"fc": "0.6", "ec": "0.3"}
        if o.kind == "cylinder":
            return self._patches.Circle((o.x, o.y), o.radius, **style)
        c, s = math.cos(o.yaw), math.sin(o.yaw)
        corners = [
            (o.x + c * dx - s * dy, o.y + s * dx + c * dy)
            for dx, dy in ((-o.half_x, -o.half_y), (o.half_x, -o.half_y))
            + ((o.half_x, o.half_y), (-o.half_x, o.half_y))
        ]
        return self._patches.Polygon(corners, closed=True, **style)

    def show(self, t: int) -> None:
        """Update the moving parts to step t."""
        r = self.layout.robot_radius
        for i in range(self.poses.shape[1]):
            path = self.poses[: t + 1, i]
            self.trails[i].set_data(path[:, 0], path[:, 1])
            x, y, yaw = path[-1]
            self.bodies[i].set_center((x, y))
            self.headings[i].set_data([x, x + r * math.cos(yaw)], [y, y + r * math.sin(yaw)])
        hits = [self.poses[s, robot, :2] for s, robot in self.collisions if s <= t]
        hits = np.array(hits) if hits else np.zeros((0, 2))
        self.crashes.set_data(hits[:, 0], hits[:, 1])
        self.ax.set_title(self._title(t), fontsize=10)

    def _title(self, t: int) -> str:
        text = f"step {t}"
        if self.result is not None and t == len(self.poses) - 1:
            r = self.result
            verdict = "success" if r["success"] else "failed"
            text = (
                f"{verdict}: {100 * r['arrived_fraction']:.0f}% arrived,"
                f" {r['collisions']} collision steps, {r['length']} steps"
            )
        else:
            text += f" ({t * self.period:.1f} s)"
        return text

    def rgb(self) -> np.ndarray:
        self.canvas.restore_region(self.background)
        for artist in self.moving:
            self.ax.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()
