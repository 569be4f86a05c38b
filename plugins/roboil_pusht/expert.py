"""Scripted, multimodal PushT expert: repeated approach -> push cycles planned from the observation.

The block is quasi-static (viscous joint friction, see pusht.xml): a push of force F at a point r
(from the block origin) moves it with v = F / b and w = (r x F) / b_theta. So pushing one face
point along its inward normal d by a distance s moves the pose along a fixed direction
g = (d, rho / rg2) / (1 + rho^2 / rg2) per metre, rho = r x d, rg2 = b_theta / b. Each cycle picks
the face point whose g best matches the pose error (cosine, minus a small cost for the walk there),
walks the pusher around the block to it (left or right at random: the multimodality), and pushes
while that still reduces the error. Success (coverage >= 0.95) ends the episode.
"""

import numpy as np
import shapely
from shapely.geometry import LineString, Point
from shapely.geometry.polygon import orient
from shapely.ops import nearest_points

from .env import PUSHER_RADIUS as R, T_VERTS, TARGET_POSE, WORKSPACE, t_polygon, wrap_angle

RG2 = 0.027 / 5.0     # b_theta / b from pusht.xml (hinge damping / slide damping), m^2
W_ANGLE = 0.1         # metres per radian in the error metric (~ equal coverage loss)
# Generous clearances: a cloned policy is off by a centimetre or two, and must not clip the block on the way
GAP_APPROACH = 0.02   # pusher surface stand-off from the face before a push
GAP_OBSTACLE = 0.015  # clearance kept from the block while travelling
GAP_HULL = 0.035      # offset of the convex hull that is walked around the block
V_TRAVEL = 0.04       # max pusher motion per 10 Hz step (m) while travelling
V_PUSH = 0.02         # ... while pushing
MIN_PUSH = 0.001      # pushes shorter than this are not worth an approach


def _rot(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s], [s, c]])


def _candidates():
    """Face points (block frame) that the pusher can push along the inward normal."""
    poly = shapely.Polygon(T_VERTS)
    pts, dirs = [], []
    for a, b in zip(T_VERTS, np.roll(T_VERTS, -1, axis=0)):
        t = (b - a) / np.linalg.norm(b - a)
        n = np.array([t[1], -t[0]])  # outward normal of a CCW polygon
        length = np.linalg.norm(b - a)
        for u in np.arange(0.012, length - 0.0119, 0.01):  # stay off corners
            c = a + t * u
            # The pusher must fit at the contact and at the stand-off point (the notch under the bar).
            if (poly.distance(Point(c + n * R)) > R - 1e-6
                    and poly.distance(Point(c + n * (R + GAP_APPROACH))) > R + GAP_APPROACH - 1e-6):
                pts.append(c)
                dirs.append(-n)
    pts, dirs = np.array(pts), np.array(dirs)
    rho = pts[:, 0] * dirs[:, 1] - pts[:, 1] * dirs[:, 0]
    return pts, dirs, rho


CONTACTS, PUSH_DIRS, RHO = _candidates()


class PushTExpert:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.reset()

    def reset(self):
        self.mode = "select"
        self.k = None     # index of the chosen contact
        self.side = 1     # +1: go around the block counter-clockwise, -1: clockwise

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _error(pose):
        e = TARGET_POSE - pose
        return np.array([e[0], e[1], W_ANGLE * wrap_angle(e[2])])

    @staticmethod
    def _generators(pose, idx):
        """Pose change (metric units) per metre of push at contacts idx."""
        d = PUSH_DIRS[idx] @ _rot(pose[2]).T
        rho = RHO[idx]
        k = 1.0 + rho ** 2 / RG2
        return np.column_stack([d[:, 0] / k, d[:, 1] / k, W_ANGLE * rho / RG2 / k])

    def _contact_world(self, pose, k):
        rot = _rot(pose[2])
        return pose[:2] + rot @ CONTACTS[k], rot @ PUSH_DIRS[k]

    def _select(self, pos, pose):
        e = self._error(pose)
        idx = np.arange(len(CONTACTS))
        g = self._generators(pose, idx)
        proj = g @ e
        cos = proj / (np.linalg.norm(g, axis=1) * np.linalg.norm(e) + 1e-12)
        alpha = proj / np.sum(g * g, axis=1)
        c, d = (pose[:2] + CONTACTS @ _rot(pose[2]).T), PUSH_DIRS @ _rot(pose[2]).T
        approach = c - d * (R + GAP_APPROACH)
        dist = np.linalg.norm(approach - pos, axis=1)
        ok = (np.abs(approach) < WORKSPACE - 0.005).all(axis=1) & (alpha > MIN_PUSH)
        if not ok.any():
            ok = alpha > 0
        score = np.where(ok, cos - 0.15 * dist, -np.inf)  # a 0.3 m walk ~ 0.05 of alignment
        self.k = int(np.argmax(score))
        self.side = 1 if self.rng.random() < 0.5 else -1  # fresh coin for every approach
        self.mode = "approach"

    @staticmethod
    def _walk(pos, waypoints, dist):
        """Point reached after moving dist along the polyline pos -> waypoints."""
        for w in waypoints:
            seg = w - pos
            n = np.linalg.norm(seg)
            if n >= dist:
                return pos + seg * dist / max(n, 1e-12)
            pos, dist = w, dist - n
        return pos

    def _route(self, pos, goal, poly):
        """Waypoints to goal that keep clear of the block, going around its hull on self.side."""
        obstacle = poly.buffer(R + GAP_OBSTACLE)
        shapely.prepare(obstacle)
        clear = lambda a, b: not obstacle.intersects(LineString([a, b]))
        if clear(pos, goal):
            return [goal]
        ring = orient(poly.convex_hull.buffer(R + GAP_HULL, quad_segs=2), 1.0).exterior
        coords = np.array(ring.coords)
        verts = coords[:-1]
        t0 = ring.project(Point(pos))
        s = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(coords, axis=0), axis=1))[:-1]]  # arc length
        for side in (self.side, -self.side):
            order = np.argsort(((s - t0) * side) % ring.length)
            path = [np.array(ring.interpolate(t0).coords[0])]
            for i in order:
                path.append(verts[i])
                if clear(verts[i], goal):
                    break
            path = [np.clip(p, -WORKSPACE, WORKSPACE) for p in path] + [goal]
            # A wall may leave no room on this side: then go around the other way.
            if all(clear(a, b) for a, b in zip(path[:-1], path[1:])):
                self.side = side
                break
        # Cut corners: head for the farthest waypoint already in straight view.
        for j in range(len(path) - 1, 0, -1):
            if clear(pos, path[j]):
                return path[j:]
        return path

    # -- policy -------------------------------------------------------------------------------
    def act(self, obs: dict) -> np.ndarray:
        pos = np.asarray(obs["agent_pos"], dtype=np.float64)
        x, y, cos, sin = np.asarray(obs["block_pose"], dtype=np.float64)
        pose = np.array([x, y, np.arctan2(sin, cos)])
        poly = t_polygon(pose)
        target = pos
        for _ in range(3):  # a mode may finish at once and hand over to the next
            if self.mode == "select":
                self._select(pos, pose)
            c, d = self._contact_world(pose, self.k)
            if self.mode == "approach":
                goal = c - d * (R + GAP_APPROACH)
                if np.linalg.norm(goal - pos) < 0.004:
                    self.mode = "push"
                    continue
                gap = poly.distance(Point(pos)) - R
                if gap < GAP_OBSTACLE:  # just finished a push: back off from the block first
                    away = pos - np.array(nearest_points(poly, Point(pos))[0].coords[0])
                    target = pos + away / (np.linalg.norm(away) + 1e-12) * (GAP_APPROACH - gap)
                else:
                    target = self._walk(pos, self._route(pos, goal, poly), V_TRAVEL)
                break
            if self.mode == "push":
                g = self._generators(pose, [self.k])[0]
                e = self._error(pose)
                alpha = g @ e / (g @ g)
                if alpha < MIN_PUSH / 2:  # this push has done what it can
                    self.mode = "select"
                    continue
                # Keep the sphere on the (block-fixed) contact point, leading it by the push step.
                target = c + d * (min(V_PUSH, alpha) - R)
                step = target - pos
                n = np.linalg.norm(step)
                if n > V_TRAVEL:
                    target = pos + step * V_TRAVEL / n
                break
        return np.clip(target, -WORKSPACE, WORKSPACE).astype(np.float32)
