"""Scripted experts for gymnasium's classic-control tasks.

Each expert is a fixed function of the current observation (no memory, no randomness), so a cloned policy
that sees the same observation can match it exactly. Discrete experts return a Python int, the pendulum
expert a float32 torque of shape (1,).
"""

from __future__ import annotations

import numpy as np

# Mean return of each expert over 100 episodes, seeds 1000..1099, under the task's episode limit, measured with
#   OMP_NUM_THREADS=1 .venv/bin/python tools/check_classic_experts.py --episodes 100 --seed-start 1000
EXPERT_RETURNS = {
    "cartpole": 500.0,
    "acrobot": -81.69,
    "mountain-car": -104.56,
    "pendulum": -160.23,
}


class _Expert:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng  # kept for the interface; the experts are deterministic

    def reset(self) -> None:
        pass  # stateless: every action is computed from the observation alone


class CartPoleExpert(_Expert):
    """LQR on the cart-pole linearised about upright, made bang-bang: push right when the LQR force is positive.

    Gains for Q = diag(10, 1, 100, 1), R = 1 on (x, x_dot, theta, theta_dot); the position weight keeps the cart
    within 0.3 m of the centre (seeds 0..999), far from the 2.4 m limit, so every episode lasts 500 steps.
    """

    GAINS = np.array([3.162, 4.630, 42.45, 10.61])

    def act(self, obs: np.ndarray) -> int:
        return int(self.GAINS @ obs > 0)


class AcrobotExpert(_Expert):
    """Energy pumping: torque (+1 or -1) along the elbow's velocity, whose product with the torque is the power
    put in, minus half the shoulder's velocity, which whips the lower link ahead of the upper one.

    The 0.5 is the best of a small grid on seeds 0..199 (-78 there; -80 to -87 for 0.3..1.0).
    """

    SHOULDER_WEIGHT = 0.5

    def act(self, obs: np.ndarray) -> int:
        shoulder_velocity, elbow_velocity = obs[4], obs[5]
        return 2 if elbow_velocity - self.SHOULDER_WEIGHT * shoulder_velocity > 0 else 0  # torque +1 / -1


class MountainCarExpert(_Expert):
    """Push along the velocity (bang-bang energy pumping), switching on a slightly tilted line v = 0.01 (x + 0.47).

    The tilt decides the first push from rest: a car right of x = -0.47 first backs up the left slope (a run-up
    that reaches the flag 20-30 steps sooner than going right at once), a car left of it goes right at once. Line
    chosen on seeds 0..199 (-104.4 there).
    """

    SLOPE, SPLIT = 0.01, -0.47

    def act(self, obs: np.ndarray) -> int:
        position, velocity = obs
        return 2 if velocity > self.SLOPE * (position - self.SPLIT) else 0  # push right / left


class PendulumExpert(_Expert):
    """Energy-based swing-up, then an LQR stabiliser once the pendulum is within ~32 degrees of upright.

    Dynamics: theta_ddot = 15 sin(theta) + 3 u (theta = 0 upright), so E = theta_dot^2 / 2 + 15 cos(theta) is 15 at
    rest upright and dE/dt = 3 u theta_dot: the swing-up pushes along theta_dot while E is short of 15 and against
    it when E is over. The stabiliser is the discrete LQR (dt = 0.05) for the env's own cost,
    Q = diag(1, 0.1), R = 0.001. It holds the top from step ~76 at the latest (seeds 0..999).
    """

    UPRIGHT_ENERGY = 15.0
    ENERGY_GAIN = 10.0  # torque per unit of energy error: saturates except within 0.2 of the target energy
    STABILISE_COS = 0.85
    LQR_GAINS = np.array([19.69, 5.26])  # (theta, theta_dot)
    MAX_TORQUE = 2.0

    def act(self, obs: np.ndarray) -> np.ndarray:
        cos, sin, velocity = (float(v) for v in obs)
        if cos > self.STABILISE_COS:
            torque = -self.LQR_GAINS @ (np.arctan2(sin, cos), velocity)
        else:
            energy = 0.5 * velocity**2 + self.UPRIGHT_ENERGY * cos
            torque = self.ENERGY_GAIN * (self.UPRIGHT_ENERGY - energy) * (1.0 if velocity >= 0 else -1.0)
        return np.array([np.clip(torque, -self.MAX_TORQUE, self.MAX_TORQUE)], dtype=np.float32)
