"""Algorithm ``gail``: adversarial imitation by acting in the task, GAIL (Ho & Ermon 2016) over (s, a) or its
state-only form GAIfO (Torabi et al. 2018) over (s, s'), with the task reward mixed in (Zhu et al. 2018).

A discriminator learns to tell the demonstrations' transitions from the policy's; its output is the policy's
imitation reward, r = lambda * r_imitation + (1 - lambda) * r_task, maximized by an on-policy (PPO, as in GAIL)
or off-policy (SAC, as in Discriminator-Actor-Critic, Kostrikov et al. 2019) learner. Episodes that end in a
terminal state continue in an absorbing state the discriminator also judges, so the reward does not favour
long or short episodes by its sign alone. With ``state_only`` it learns from observation-only stores
(``roboil store drop-actions``).

The algorithm owns its loop: ``train.steps`` counts environment steps, ``train.lr`` is the policy's learning
rate and ``train.batch_size`` the discriminator's (and SAC's) batch. The learners are written here rather than
taken from stable-baselines3: its policies take gymnasium spaces instead of our observation plugins' encoders,
and it saves pickles; these fit the encoders, checkpoint as safetensors and resume exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import roboil
from roboil import AlgorithmSpec, RoboilError
from roboil.config import check_range

LEARNERS = ("ppo", "sac")
# what its loop applies of train.* (besides the core's steps, seed, ...): Adam at a constant train.lr, no schedule,
# weight decay or EMA (as GAIL and SAC train), gradients clipped to train.grad_clip
TRAIN_KEYS = ("batch_size", "lr", "grad_clip")
REWARDS = ("gail", "logd", "logit")


@dataclass
class GailConfig:
    learner: str = "ppo"  # "ppo" (on-policy) or "sac" (off-policy; continuous actions)
    state_only: bool = False  # discriminate (s, s') instead of (s, a): GAIfO, works without demonstrated actions
    discriminator_keys: list[str] | None = None  # observation arrays the discriminator sees (None: all of them)
    discriminator_deltas: bool = False  # state-only: show it s' - s too, scaled to unit spread over the demos
    reward: str = "gail"  # from D = P(expert): "gail" -log(1 - D), "logd" log D, "logit" log D - log(1 - D) (AIRL)
    gradient_penalty: float = 0.0  # weight of the penalty on the discriminator's gradient between the two data
    spectral_norm: bool = False  # spectral normalization of the discriminator's layers
    absorbing: bool = True  # terminal transitions lead to an absorbing state the discriminator judges (DAC)
    discriminator_ratio: float = 1.0  # discriminator steps per policy update (a PPO rollout's or a SAC step)
    discriminator_lr: float = 3e-4
    imitation_weight: float = 1.0  # lambda: 1 is pure imitation, 0 pure RL on the task reward
    imitation_weight_final: float | None = None  # anneal lambda linearly to this over train.steps
    hidden: list[int] = field(default_factory=lambda: [64, 64])  # policy and critic layers
    discriminator_hidden: list[int] = field(default_factory=lambda: [64, 64])
    n_envs: int = 8
    gamma: float = 0.99
    bc_steps: int = 0  # warm start: behaviour-clone the demonstrated actions for this many steps first
    # share of training episodes that start from a state along the demonstrations (Zhu et al.) rather than from
    # the task's reset; the states are found by replaying the demonstrated actions (needs the task's set_state)
    demo_state_resets: float = 0.0
    # environment steps between evaluations of the deterministic policy (0: never); both may change on resume
    eval_every: int = roboil.resumable(0)
    eval_episodes: int = roboil.resumable(10)
    # PPO
    rollout_steps: int = 256  # per environment, between updates
    epochs: int = 10
    minibatches: int = 8
    clip: float = 0.2
    gae_lambda: float = 0.95
    entropy_weight: float = 0.0
    value_weight: float = 0.5
    # SAC
    buffer_size: int = 200_000
    learning_starts: int = 1000  # environment steps before learning (uniformly random actions unless warm-started)
    updates_per_step: float = 1.0  # SAC gradient steps per environment step
    tau: float = 0.005
    demo_replay_fraction: float = 0.0  # share of each SAC batch drawn from the demonstrations (needs actions)
    # keep cloning the demonstrated actions in SAC's actor loss with this weight (times the batch's mean |Q|),
    # so learning does not undo the warm start (Nair et al. 2018; the scaling as in TD3+BC)
    bc_weight: float = 0.0

    def __post_init__(self):
        if self.learner not in LEARNERS:
            raise RoboilError(f"algorithm.learner '{self.learner}' is invalid; valid: {', '.join(LEARNERS)}")
        if self.reward not in REWARDS:
            raise RoboilError(f"algorithm.reward '{self.reward}' is invalid; valid: {', '.join(REWARDS)}")
        for name in ("imitation_weight", "imitation_weight_final", "demo_replay_fraction", "demo_state_resets",
                     "gae_lambda", "tau"):
            if getattr(self, name) is not None:
                check_range(f"algorithm.{name}", getattr(self, name), low=0.0, high=1.0)
        check_range("algorithm.gamma", self.gamma, low=0.0, high=1.0, low_open=True, high_open=True)
        for name in ("n_envs", "rollout_steps", "epochs", "minibatches", "eval_episodes", "buffer_size"):
            if getattr(self, name) < 1:
                raise RoboilError(f"algorithm.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("gradient_penalty", "discriminator_ratio", "bc_steps", "bc_weight", "eval_every",
                     "learning_starts", "updates_per_step", "entropy_weight", "value_weight", "discriminator_lr"):
            check_range(f"algorithm.{name}", getattr(self, name), low=0.0)
        for name in ("hidden", "discriminator_hidden"):
            if not all(isinstance(width, int) and width > 0 for width in getattr(self, name)):
                raise RoboilError(f"algorithm.{name} must list positive layer widths, got {getattr(self, name)}")
        if self.discriminator_keys is not None and not self.discriminator_keys:
            raise RoboilError("algorithm.discriminator_keys is empty: the discriminator would see nothing; name the "
                              "arrays it sees, or leave it out for all of them")
        if self.bc_weight and self.learner != "sac":
            raise RoboilError("algorithm.bc_weight is a term of SAC's actor loss; set learner: sac, or bc_weight: 0")

    @property
    def needs_actions(self) -> bool:
        return bool(self.uses_of_actions)

    @property
    def uses_of_actions(self) -> list[str]:
        """The settings that need demonstrated actions: a discriminator over (s, a), a BC warm start or term,
        demonstrations replayed to the learner, or episodes started along them."""
        uses = {"state_only=false": not self.state_only, "bc_steps>0": self.bc_steps > 0,
                "bc_weight>0": self.bc_weight > 0, "demo_replay_fraction>0": self.demo_replay_fraction > 0,
                "demo_state_resets>0": self.demo_state_resets > 0}
        return [f"algorithm.{name}" for name, used in uses.items() if used]


def build(context):
    from .model import GailModel

    return GailModel(context)


def train(context):
    from .loop import train_gail

    train_gail(context)


@roboil.hookimpl
def register_algorithms():
    return [AlgorithmSpec(name="gail", config=GailConfig, build=build, train=train, train_keys=TRAIN_KEYS,
                          summary="GAIL / GAIfO (state-only) with task-reward mixing; PPO or SAC learner (SAC: "
                                  "continuous actions); GAIfO needs no demonstrated actions")]
