"""The off-policy learner, as Discriminator-Actor-Critic (Kostrikov et al. 2019) uses it: SAC with twin Q
networks, target networks and a learned temperature, on a replay buffer whose rewards are recomputed by the
current discriminator each time a batch is drawn. Optionally a share of each batch comes from the
demonstrations themselves."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from roboil import load_optimizer
from roboil.sampler import gather

from .loop import (Episodes, Transitions, as_tensors, bc_loss, cat_batches, demonstration_steps,
                   nested, with_absorbing)


class Replay:
    """A ring buffer of transitions as tensors (saved in checkpoints, so a resumed run replays the same)."""

    def __init__(self, capacity: int):
        self.capacity, self.size, self.position = capacity, 0, 0
        self.data: dict = {}

    def add(self, batch: dict) -> None:
        n = len(batch["action"])
        if not self.data:
            self.data = {name: nested(lambda v: v.new_zeros(self.capacity, *v.shape[1:]), value)
                         for name, value in batch.items()}
        rows = (self.position + torch.arange(n)) % self.capacity
        for name, value in batch.items():
            nested(lambda stored, new: stored.__setitem__(rows, new), self.data[name], value)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    def sample(self, n: int) -> dict:
        rows = torch.randint(0, self.size, (n,))
        return {name: nested(lambda v: v[rows], value) for name, value in self.data.items()}

    def state(self) -> dict:
        return {"capacity": self.capacity, "size": self.size, "position": self.position, "data": self.data}

    def load(self, state: dict) -> None:
        self.capacity, self.size, self.position, self.data = (state["capacity"], state["size"], state["position"],
                                                              state["data"])


def demonstration_replay(data, model, device) -> Replay:
    """The demonstrations as learner transitions (s, a, s'), an episode's terminal step leading nowhere; the
    task reward is not stored in episode stores, so these carry the imitation reward alone."""
    rows, following, terminal = demonstration_steps(data, keep_cut_ends=False)
    keys = list(data.features)
    replay = Replay(len(rows))
    replay.add({
        "obs": {k: torch.as_tensor(gather(data.arrays[k], rows), device=device) for k in keys},
        "next": {k: torch.as_tensor(gather(data.arrays[k], following), device=device) for k in keys},
        "action": model.from_env(torch.as_tensor(gather(data.arrays["action"], rows), device=device).float()),
        "task_reward": torch.zeros(len(rows), device=device),
        "terminated": torch.as_tensor(terminal, device=device),
    })
    return replay


class SAC:
    def __init__(self, context, model, discriminating, data):
        self.cfg, self.train = context.config.algorithm_params, context.config.train
        self.model, self.discriminating, self.device, self.data = model, discriminating, context.device, data
        lr = self.train.lr
        self.actor_optimizer = torch.optim.Adam(model.policy_params(), lr=lr)
        self.critic_optimizer = torch.optim.Adam(model.critic_params(), lr=lr)
        self.alpha_optimizer = torch.optim.Adam([model.log_alpha], lr=lr)
        self.target_entropy = -float(model.action_size)
        self.replay = Replay(self.cfg.buffer_size)
        self.demos = demonstration_replay(data, model, context.device) if self.cfg.demo_replay_fraction else None
        self.owed = 0.0  # fractional gradient steps carried between environment steps

    def advance(self, episodes: Episodes, step: int) -> tuple[int, dict]:
        cfg, model = self.cfg, self.model
        obs = as_tensors(episodes.obs, self.device)
        if step < cfg.learning_starts and not cfg.bc_steps:  # a warm-started policy explores on its own
            action = torch.rand(cfg.n_envs, model.action_size, device=self.device) * 2 - 1
        else:
            with torch.no_grad():
                action, _ = model.squashed_sample(obs)
        following, reward, terminated, truncated = episodes.step(model.to_env(action).cpu().numpy())
        self.replay.add({"obs": obs, "next": as_tensors(following, self.device), "action": action,
                         "task_reward": torch.as_tensor(reward, dtype=torch.float32, device=self.device),
                         "terminated": torch.as_tensor(terminated, device=self.device)})
        step += cfg.n_envs
        metrics: dict = {}
        if step >= cfg.learning_starts:
            self.owed += cfg.n_envs * cfg.updates_per_step
            while self.owed >= 1.0:
                self.owed -= 1.0
                metrics = self._update(step)
        return step, metrics

    def _transitions(self, batch: dict) -> Transitions:
        keys = self.model.discriminator_keys
        return with_absorbing({k: batch["obs"][k] for k in keys}, {k: batch["next"][k] for k in keys},
                              batch["action"], batch["terminated"], self.cfg.absorbing)

    def _batch(self) -> dict:
        size = self.train.batch_size
        if self.demos is None:
            return self.replay.sample(size)
        n_demo = int(round(size * self.cfg.demo_replay_fraction))
        return cat_batches(self.replay.sample(size - n_demo), self.demos.sample(n_demo))

    def _update(self, step: int) -> dict:
        cfg, model = self.cfg, self.model
        metrics = self.discriminating.update(self._transitions(self.replay.sample(self.train.batch_size)))
        batch = self._batch()
        real = self._transitions(batch).rows(torch.arange(len(batch["action"])))
        reward, imitation = self.discriminating.rewards(real, batch["terminated"], batch["task_reward"], step)
        alpha = model.log_alpha.exp().detach()
        with torch.no_grad():
            next_action, next_log_prob = model.squashed_sample(batch["next"])
            q1, q2 = model.q_values(batch["next"], next_action, target=True)
            alive = 1.0 - batch["terminated"].float()
            target = reward + cfg.gamma * alive * (torch.min(q1, q2) - alpha * next_log_prob)
        q1, q2 = model.q_values(batch["obs"], batch["action"])
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self._clip(model.critic_params())
        self.critic_optimizer.step()

        action, log_prob = model.squashed_sample(batch["obs"])
        q1, q2 = model.q_values(batch["obs"], action)
        q = torch.min(q1, q2)
        actor_loss = (alpha * log_prob - q).mean()
        if cfg.bc_weight:  # scaled by |Q| so the balance does not depend on the rewards' scale (as TD3+BC)
            cloning = bc_loss(model, self.data, self.train.batch_size, self.device)
            actor_loss = actor_loss + cfg.bc_weight * q.abs().mean().detach() * cloning
            metrics["bc_loss"] = cloning.detach()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self._clip(model.policy_params())
        self.actor_optimizer.step()
        alpha_loss = -(model.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_optimizer.step()
        with torch.no_grad():
            for target_net, net in ((model.q1_target, model.q1), (model.q2_target, model.q2)):
                for p_target, p in zip(target_net.parameters(), net.parameters()):
                    p_target.lerp_(p, cfg.tau)
        return {**metrics, "critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "alpha": alpha,
                "imitation_reward": imitation.mean()}

    def _clip(self, params) -> None:
        if self.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, self.train.grad_clip)

    def state(self) -> dict:
        return {"actor": self.actor_optimizer.state_dict(), "critic": self.critic_optimizer.state_dict(),
                "alpha": self.alpha_optimizer.state_dict(), "replay": self.replay.state(), "owed": self.owed}

    def load(self, state: dict) -> None:
        load_optimizer(self.actor_optimizer, state["actor"])
        load_optimizer(self.critic_optimizer, state["critic"])
        load_optimizer(self.alpha_optimizer, state["alpha"])
        self.replay.load(state["replay"])
        self.owed = state["owed"]
