"""What both learners share: the demonstrations as discriminator inputs, the environments and their episodes,
the discriminator's step and the reward it gives, the BC warm start and the periodic evaluation; then
``train_gail`` picks the learner.

Resuming is exact: at every checkpoint each environment starts a new episode (the running ones count as cut
by a time limit, which the learners bootstrap), so the state saved is the whole state.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import Mapping

import numpy as np
import torch
from torch.nn import functional as F

from roboil import RoboilError, load_optimizer
from roboil.replay import demonstration_states
from roboil.sampler import gather

from .model import GailModel, imitation_reward, mix_rewards

RECENT_EPISODES = 20  # the training return logged is the mean over the last this many episodes
EVAL_SEED = 10**8  # evaluation episodes start from seeds no training episode uses


def episode_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def as_tensors(obs: Mapping[str, np.ndarray], device) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v), device=device) for k, v in obs.items()}


def nested(fn, *values):
    """``fn`` over tensors, or key by key over dicts of them (observations) of the same keys."""
    if isinstance(values[0], dict):
        return {k: fn(*(v[k] for v in values)) for k in values[0]}
    return fn(*values)


def cat_batches(*batches: dict) -> dict:
    """Batches of the same layout (names to tensors or observation dicts), joined row-wise."""
    return {name: nested(lambda *xs: torch.cat(xs), *(b[name] for b in batches)) for name in batches[0]}


def demonstration_steps(data, keep_cut_ends: bool):
    """Store rows of the demonstrations' transitions: ``(rows, following, terminal)``. The last step of an episode
    that terminated is kept, as terminal; that of an episode cut by its time limit (its successor is not
    stored) only with ``keep_cut_ends``."""
    starts = np.concatenate([[0], data.store.episode_ends[:-1]])
    ends = data.store.episode_ends
    rows, following, terminal = [], [], []
    for episode, terminated in zip(data.episodes, data.terminated):
        lo, hi = int(starts[episode]), int(ends[episode])
        steps = np.arange(lo, hi if terminated or keep_cut_ends else hi - 1)
        rows.append(steps)
        following.append(np.minimum(steps + 1, hi - 1))
        terminal.append((steps == hi - 1) & bool(terminated))
    return tuple(map(np.concatenate, (rows, following, terminal)))


class Transitions(dict):
    """Discriminator inputs: ``obs`` and ``next`` (observation dicts), ``action`` (as the networks read it) and
    ``absorbing`` ``(N, 2)`` flags; :meth:`sample` draws a batch of rows."""

    @property
    def size(self) -> int:
        return len(self["absorbing"])

    def rows(self, index: torch.Tensor) -> "Transitions":
        return Transitions({name: nested(lambda x: x[index], value) for name, value in self.items()})

    def live(self) -> "Transitions":
        """The real transitions: neither s nor s' absorbing."""
        return self.rows(torch.nonzero(self["absorbing"].sum(-1) == 0)[:, 0])

    def sample(self, n: int) -> "Transitions":
        return self.rows(torch.randint(0, self.size, (n,), device=self["absorbing"].device))


def with_absorbing(obs, following, action, terminated: torch.Tensor, absorbing: bool) -> Transitions:
    """Transitions as the discriminator sees them: a terminal one leads to the absorbing state (its s' flagged),
    and each adds the absorbing state's own transition (s flagged too; the values under a flag are ignored)."""
    flags = torch.zeros(len(terminated), 2, device=terminated.device)
    if absorbing:
        flags[:, 1] = terminated.float()
    out = Transitions(obs=obs, next=following, action=action, absorbing=flags)
    ends = terminated.nonzero()[:, 0] if absorbing else terminated.new_zeros(0, dtype=torch.long)
    if len(ends) == 0:
        return out
    loops = out.rows(ends)
    loops["absorbing"] = torch.ones_like(loops["absorbing"])
    return Transitions(cat_batches(out, loops))


def expert_transitions(data, model: GailModel, cfg, device) -> Transitions:
    """The demonstrations' transitions: (s_t, s_t+1) pairs (state-only) or (s_t, a_t); an episode that ended in a
    terminal state leads to the absorbing state after its last step."""
    # (s, s') needs the stored successor, except where the absorbing state follows a terminal step
    rows, following, terminal = demonstration_steps(data, keep_cut_ends=not cfg.state_only)
    if cfg.state_only and not cfg.absorbing:
        rows, following, terminal = rows[~terminal], following[~terminal], terminal[~terminal]
    if len(rows) == 0:
        raise RoboilError(f"the demonstrations in '{data.store.path}' hold no transitions (every episode is one "
                          "step long); record longer episodes")
    keys = model.discriminator_keys
    obs = {k: torch.as_tensor(gather(data.arrays[k], rows), device=device) for k in keys}
    nxt = {k: torch.as_tensor(gather(data.arrays[k], following), device=device) for k in keys}
    action = (model.from_env(torch.as_tensor(gather(data.arrays["action"], rows), device=device).float())
              if not cfg.state_only else torch.zeros(len(rows), model.action_size, device=device))
    return with_absorbing(obs, nxt, action, torch.as_tensor(terminal, device=device), cfg.absorbing)


class Episodes:
    """``n`` environments and their episodes: each episode seeded from (train.seed, its index), finished ones
    restarted at once, the task returns of finished episodes kept. With ``demo_states`` and ``demo_share``,
    that share of episodes starts instead from a state along the demonstrations, drawn from the episode's seed
    (so a resumed run draws the same)."""

    def __init__(self, context, n: int, seed: int, started: int = 0, recent=(),
                 demo_states: np.ndarray | None = None, demo_share: float = 0.0):
        self.envs = context.make_envs(n)
        self.n, self.seed, self.started = n, seed, started
        self.demo_states, self.demo_share = demo_states, demo_share
        self.returns = np.zeros(n)
        self.recent = deque(recent, maxlen=RECENT_EPISODES)
        self.obs: dict[str, np.ndarray] = {}

    def _begin(self, mask: np.ndarray | None) -> None:
        """New episodes in the envs of ``mask`` (None: all of them)."""
        indices = np.arange(self.n) if mask is None else np.flatnonzero(mask)
        seeds = [episode_seed(self.seed, self.started + i) for i in range(len(indices))]
        self.started += len(indices)
        every = dict(zip(indices.tolist(), seeds))
        self.obs, _ = self.envs.reset(seed=[every.get(i) for i in range(self.n)],
                                      options=None if mask is None else {"reset_mask": mask})
        if self.demo_states is None:
            return
        for index, seed in every.items():
            draw = np.random.default_rng(seed)
            if draw.random() < self.demo_share:
                state = self.demo_states[draw.integers(len(self.demo_states))]
                self.obs, _ = self.envs.reset(seed=[seed if i == index else None for i in range(self.n)],
                                              options={"reset_mask": np.arange(self.n) == index, "state": state})

    def restart(self) -> None:
        """Every environment begins a new episode (at the start and after each checkpoint)."""
        self._begin(None)
        self.returns[:] = 0.0

    def step(self, actions: np.ndarray):
        """Step every environment; returns the true next observations (before restarts), task rewards and the
        terminated and truncated flags. ``self.obs`` then holds what the policy acts on next."""
        following, reward, terminated, truncated, _ = self.envs.step(actions)
        self.returns += reward
        done = terminated | truncated
        if done.any():
            self.recent.extend(self.returns[done].tolist())
            self.returns[done] = 0.0
            self._begin(done)
        else:
            self.obs = following
        return following, reward, terminated, truncated

    def state(self) -> dict:
        return {"started": self.started, "recent": list(self.recent)}

    def close(self) -> None:
        self.envs.close()


class Discriminating:
    """The discriminator's optimizer and step, the imitation reward and its mix with the task reward."""

    def __init__(self, model: GailModel, cfg, expert: Transitions, batch_size: int, steps: int):
        self.model, self.cfg, self.expert = model, cfg, expert
        self.batch_size, self.total_steps = batch_size, steps
        self.optimizer = torch.optim.Adam(model.discriminator_params(), lr=cfg.discriminator_lr)
        self.owed = 0.0  # fractional discriminator steps carried between policy updates

    def imitation_weight(self, step: int) -> float:
        cfg = self.cfg
        if cfg.imitation_weight_final is None:
            return cfg.imitation_weight
        progress = min(1.0, step / self.total_steps)
        return cfg.imitation_weight + (cfg.imitation_weight_final - cfg.imitation_weight) * progress

    def update(self, policy: Transitions) -> dict[str, torch.Tensor]:
        """The steps owed for one policy update (``discriminator_ratio`` of them, fractions carried over)."""
        self.owed += self.cfg.discriminator_ratio
        metrics: dict[str, torch.Tensor] = {}
        while self.owed >= 1.0:
            self.owed -= 1.0
            metrics = self.step(self.expert.sample(self.batch_size), policy.sample(self.batch_size))
        return metrics

    def step(self, expert: Transitions, policy: Transitions) -> dict[str, torch.Tensor]:
        """Logistic loss (expert 1, policy 0), plus the penalty on the gradient norm's distance from 1 at points
        between the two batches (taken on the head's input: the encoded features)."""
        disc = self.model.discriminator
        x_expert = disc.inputs(expert["obs"], expert["next"] if self.cfg.state_only else expert["action"],
                               expert["absorbing"])
        x_policy = disc.inputs(policy["obs"], policy["next"] if self.cfg.state_only else policy["action"],
                               policy["absorbing"])
        logit_expert, logit_policy = disc.head(x_expert)[:, 0], disc.head(x_policy)[:, 0]
        loss = (F.binary_cross_entropy_with_logits(logit_expert, torch.ones_like(logit_expert))
                + F.binary_cross_entropy_with_logits(logit_policy, torch.zeros_like(logit_policy)))
        metrics = {"discriminator_loss": loss.detach(), "expert_accuracy": (logit_expert > 0).float().mean(),
                   "policy_accuracy": (logit_policy < 0).float().mean()}
        if self.cfg.gradient_penalty > 0:
            mix = torch.rand(len(x_expert), 1, device=x_expert.device)
            between = (mix * x_expert.detach() + (1 - mix) * x_policy.detach()).requires_grad_(True)
            grad, = torch.autograd.grad(disc.head(between).sum(), between, create_graph=True)
            penalty = ((grad.norm(dim=-1) - 1.0) ** 2).mean()
            loss = loss + self.cfg.gradient_penalty * penalty
            metrics["gradient_penalty"] = penalty.detach()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return metrics

    @torch.no_grad()
    def rewards(self, transitions: Transitions, terminated: torch.Tensor, task_reward: torch.Tensor,
                step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixed reward of real transitions (no absorbing rows), and the imitation part alone. A terminal
        transition also earns the absorbing state's discounted value, r_abs / (1 - gamma), after it."""
        cfg, disc = self.cfg, self.model.discriminator
        other = transitions["next"] if cfg.state_only else transitions["action"]
        imitation = imitation_reward(disc(transitions["obs"], other, transitions["absorbing"]), cfg.reward)
        if cfg.absorbing:
            absorbing = imitation_reward(disc.head(disc.absorbing_input())[:, 0], cfg.reward)
            imitation = imitation + terminated.float() * cfg.gamma * absorbing / (1.0 - cfg.gamma)
        return mix_rewards(imitation, task_reward, self.imitation_weight(step)), imitation

    def state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "owed": self.owed}

    def load(self, state: dict) -> None:
        load_optimizer(self.optimizer, state["optimizer"])
        self.owed = state["owed"]


def bc_loss(model: GailModel, data, batch_size: int, device) -> torch.Tensor:
    """Behaviour cloning's loss on a batch of demonstrated steps: cross-entropy of the choice, or the squared error
    of the deterministic action."""
    rows = data.rows[torch.randint(0, len(data.rows), (batch_size,)).numpy()]
    obs = {k: torch.as_tensor(gather(data.arrays[k], rows), device=device) for k in data.features}
    target = model.from_env(torch.as_tensor(gather(data.arrays["action"], rows), device=device).float())
    if model.discrete:
        return F.cross_entropy(model.distribution(obs).logits, target.argmax(-1))
    return F.mse_loss(model.deterministic(obs), target)


def behaviour_clone(model: GailModel, data, steps: int, batch_size: int, lr: float, device) -> float:
    """Warm start: fit the policy to the demonstrated actions; returns the last batch's loss."""
    optimizer = torch.optim.Adam([*model.actor_encoder.parameters(), *model.actor.parameters()], lr=lr)
    loss = torch.zeros(())
    for _ in range(steps):
        loss = bc_loss(model, data, batch_size, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


class Evaluation:
    """Every ``eval_every`` environment steps: the deterministic policy's mean task return and success rate over
    ``eval_episodes`` fixed starts (the latest result is logged with every line until the next)."""

    def __init__(self, context, cfg, model: GailModel):
        self.every, self.model, self.device = cfg.eval_every, model, context.device
        self.envs = context.make_envs(cfg.eval_episodes) if cfg.eval_every else None
        self.latest: dict[str, float] = {}

    def maybe(self, before: int, after: int) -> None:
        if self.envs is None or after // self.every == before // self.every:
            return
        n = self.envs.num_envs
        seeds = [EVAL_SEED + i for i in range(n)]
        obs, _ = self.envs.reset(seed=seeds)
        returns, success, live = np.zeros(n), np.zeros(n, bool), np.ones(n, bool)
        self.model.eval()
        while live.any():
            with torch.no_grad():
                action = self.model.to_env(self.model.deterministic(as_tensors(obs, self.device)))
            obs, reward, terminated, truncated, info = self.envs.step(action.cpu().numpy())
            returns += reward * live
            ended = terminated | truncated
            success[live & ended] = np.asarray(info["is_success"], bool)[live & ended]
            live &= ~ended
            if ended.any():  # finished envs must be reset to step again; their further episodes are not counted
                obs, _ = self.envs.reset(seed=seeds, options={"reset_mask": ended})
        self.model.train()
        self.latest = {"eval_return": float(returns.mean()), "eval_success": float(success.mean()),
                       "eval_step": float(after)}

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()


def _say_rounding(context, stride: int) -> None:
    """Steps come in strides (a PPO rollout, or one step of every environment): say where that moves the end,
    the log lines and the checkpoints, which a config's round numbers would not suggest (a move of under 5%,
    200,704 steps for 200,000 say, goes unsaid)."""
    train = context.config.train
    rounded = {name: -(-getattr(train, name) // stride) * stride for name in ("steps", "log_every", "checkpoint_every")}
    if context.ranks.main and any(up - getattr(train, name) > 0.05 * getattr(train, name)
                                  for name, up in rounded.items()):
        print(f"roboil: gail takes environment steps {stride} at a time (algorithm.n_envs"
              f"{' x rollout_steps' if context.config.algorithm_params.learner == 'ppo' else ''}): it trains "
              f"{rounded['steps']} steps, and logs and saves at the first stride past each multiple of "
              "train.log_every and train.checkpoint_every", file=sys.stderr)


def train_gail(context) -> None:
    cfg, train = context.config.algorithm_params, context.config.train
    data = context.load_demonstrations(actions=False)
    if cfg.needs_actions and data.action_dim is None:
        uses = cfg.uses_of_actions
        raise RoboilError(f"store '{context.config.data.path}' holds observations only (no actions), which "
                          f"{' and '.join(uses)} need{'s' if len(uses) == 1 else ''}; set algorithm.state_only=true "
                          "and leave out what learns from actions (GAIfO), or train on a store recorded with actions")
    if cfg.demo_replay_fraction > 0 and (cfg.learner != "sac" or cfg.imitation_weight < 1
                                         or cfg.imitation_weight_final not in (None, 1.0)):
        raise RoboilError("algorithm.demo_replay_fraction needs learner=sac and pure imitation (imitation_weight 1): "
                          "stores hold no task rewards to replay")
    model = context.build_policy(data.features, data.action_dim or 0, data.stats)
    device = context.device
    expert = expert_transitions(data, model, cfg, device)
    if model.discriminator.deltas:  # a resumed run loads the scale it saved
        live = expert.live()
        model.discriminator.fit_delta_scale(live["obs"], live["next"])
    discriminating = Discriminating(model, cfg, expert, train.batch_size, train.steps)
    if cfg.learner == "ppo":
        from .ppo import PPO as Learner
    else:
        from .sac import SAC as Learner
    learner = Learner(context, model, discriminating, data)
    _say_rounding(context, cfg.n_envs * (cfg.rollout_steps if cfg.learner == "ppo" else 1))
    state = context.resume()
    if state is not None:
        model.load_state_dict(state["model"])
        discriminating.load(state["discriminator"])
        learner.load(state["learner"])
    elif cfg.bc_steps:
        loss = behaviour_clone(model, data, cfg.bc_steps, train.batch_size, train.lr, device)
        print(f"roboil: gail warm start: {cfg.bc_steps} BC steps, final loss {loss:.4f}")
    demo_states = (demonstration_states(data.store, data.episodes.tolist()) if cfg.demo_state_resets > 0
                   else None)
    episodes = Episodes(context, cfg.n_envs, train.seed, **(state["episodes"] if state else {}),
                        demo_states=demo_states, demo_share=cfg.demo_state_resets)
    evaluation = Evaluation(context, cfg, model)
    try:
        episodes.restart()
        step = context.start_step
        while step < train.steps:
            before = step
            step, metrics = learner.advance(episodes, step)
            evaluation.maybe(before, step)
            if episodes.recent:
                metrics["return"] = float(np.mean(episodes.recent))
            context.log(step, {**metrics, **evaluation.latest, "imitation_weight": discriminating.imitation_weight(step)})
            if context.should_checkpoint(step):
                context.save_checkpoint(step, model, {
                    "model": model.state_dict(), "discriminator": discriminating.state(),
                    "learner": learner.state(), "episodes": episodes.state()})
                episodes.restart()
    finally:
        episodes.close()
        evaluation.close()
