"""PyBullet bodies of the world, built as static triangle meshes.

Everything the lidar can see (robots, walls, obstacles) is a triangle mesh:
Bullet casts a ray against a triangle mesh analytically, about three times
faster than against a convex cylinder or box (which goes through GJK), and ray
casting is most of a simulation step. Round things are prisms circumscribing
the true circle, so a scan sees them at most ~1 mm larger than the 2-D contact
test in geometry.py does (radius * (1 / cos(pi / sides) - 1)).

Meshes are hit from both sides, so a ray that starts inside a robot would see
that robot: lidar rays therefore start just outside their own robot
(`robot_clearance`).
"""

from __future__ import annotations

import math

import numpy as np

from mappo_training.sim.geometry import Obstacle

ROUND_SIDES = 32


def _prism(outline: np.ndarray, height: float) -> tuple[list, list]:
    """Vertices and triangle indices of the side faces of a vertical prism.

    outline: (S, 2) polygon corners, counter-clockwise; z from 0 to height.
    Only the sides are needed: lidar rays are horizontal.
    """
    sides = len(outline)
    vertices = [[x, y, z] for z in (0.0, height) for x, y in outline]
    indices = []
    for i in range(sides):
        j = (i + 1) % sides
        indices += [i, j, sides + j, i, sides + j, sides + i]
    return vertices, indices


def circumradius(radius: float, sides: int = ROUND_SIDES) -> float:
    """Corner radius of a regular polygon whose edges touch a circle of `radius`."""
    return radius / math.cos(math.pi / sides)


def round_outline(radius: float, sides: int = ROUND_SIDES) -> np.ndarray:
    angles = 2.0 * math.pi * np.arange(sides) / sides
    corner = circumradius(radius, sides)
    return corner * np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def box_outline(half_x: float, half_y: float) -> np.ndarray:
    return np.array([[-half_x, -half_y], [half_x, -half_y], [half_x, half_y], [-half_x, half_y]])


def robot_clearance(radius: float) -> float:
    """How far from its centre a robot's lidar rays start: just outside its own mesh."""
    return circumradius(radius) + 1e-4


def _mesh_body(p, client: int, outline: np.ndarray, height: float, x: float, y: float, yaw=0.0):
    vertices, indices = _prism(outline, height)
    shape = p.createCollisionShape(
        p.GEOM_MESH, vertices=vertices, indices=indices, physicsClientId=client
    )
    body = p.createMultiBody(
        baseMass=0.0,
        baseCollisionShapeIndex=shape,
        basePosition=[x, y, 0.0],
        baseOrientation=[0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)],
        physicsClientId=client,
    )
    return body, shape


def create_walls(p, client: int, arena_size: float, height: float, x: float, y: float) -> int:
    """The four walls of an arena centred at (x, y): inner faces at +-arena_size / 2."""
    body, _ = _mesh_body(p, client, box_outline(arena_size / 2.0, arena_size / 2.0), height, x, y)
    return body


def create_robot_shape(p, client: int, radius: float, height: float) -> int:
    """One mesh shape shared by every robot body."""
    vertices, indices = _prism(round_outline(radius), height)
    return p.createCollisionShape(
        p.GEOM_MESH, vertices=vertices, indices=indices, physicsClientId=client
    )


def create_robot(p, client: int, shape: int, x: float, y: float) -> int:
    return p.createMultiBody(
        baseMass=0.0,
        baseCollisionShapeIndex=shape,
        basePosition=[x, y, 0.0],
        physicsClientId=client,
    )


def obstacle_shape_key(obstacle: Obstacle) -> tuple:
    """What an obstacle's collision shape depends on (not where it stands or its yaw)."""
    if obstacle.kind == "cylinder":
        return ("cylinder", obstacle.radius)
    return ("box", obstacle.half_x, obstacle.half_y)


def create_obstacle_shape(p, client: int, obstacle: Obstacle, height: float) -> int:
    """A mesh collision shape for obstacles of this size, to place as many bodies as wanted."""
    if obstacle.kind == "cylinder":
        outline = round_outline(obstacle.radius)
    else:
        outline = box_outline(obstacle.half_x, obstacle.half_y)
    vertices, indices = _prism(outline, height)
    return p.createCollisionShape(
        p.GEOM_MESH, vertices=vertices, indices=indices, physicsClientId=client
    )


def place_obstacle(p, client: int, shape: int, obstacle: Obstacle, x: float, y: float) -> int:
    """A static body of `shape` at physics-frame (x, y), turned by the obstacle's yaw."""
    yaw = obstacle.yaw
    return p.createMultiBody(
        baseMass=0.0,
        baseCollisionShapeIndex=shape,
        basePosition=[x, y, 0.0],
        baseOrientation=[0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)],
        physicsClientId=client,
    )
