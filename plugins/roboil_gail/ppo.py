"""The on-policy learner, as GAIL used it: PPO with clipped ratios and GAE (the CleanRL recipe). Each
``advance`` collects a rollout of ``rollout_steps`` per environment, updates the discriminator on it, rewards
it with the updated discriminator and takes ``epochs`` passes of minibatch updates."""

from __future__ import annotations

import torch

from roboil import load_optimizer

from .loop import Episodes, as_tensors, with_absorbing


def stack(steps: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """A rollout's per-step observation dicts ``(n, ...)`` as one dict of ``(T * n, ...)``."""
    return {k: torch.cat([s[k] for s in steps]) for k in steps[0]}


class PPO:
    def __init__(self, context, model, discriminating, data):
        self.cfg, self.train = context.config.algorithm_params, context.config.train
        self.model, self.discriminating, self.device = model, discriminating, context.device
        self.optimizer = torch.optim.Adam(model.policy_params(), lr=self.train.lr, eps=1e-5)

    def advance(self, episodes: Episodes, step: int) -> tuple[int, dict]:
        cfg, model, device = self.cfg, self.model, self.device
        observations, followings, actions, log_probs, values = [], [], [], [], []
        task_rewards, terminals, truncations, bootstraps = [], [], [], []
        for _ in range(cfg.rollout_steps):
            obs = as_tensors(episodes.obs, device)
            with torch.no_grad():
                dist = model.distribution(obs)
                action = dist.sample()
                log_probs.append(dist.log_prob(action))
                values.append(model.value(obs))
            following, reward, terminated, truncated = episodes.step(model.to_env(action).cpu().numpy())
            following = as_tensors(following, device)
            truncated = torch.as_tensor(truncated & ~terminated, device=device)
            with torch.no_grad():  # cut by the time limit: the return goes on past it, valued by the critic
                bootstraps.append(torch.where(truncated, cfg.gamma * model.value(following), 0.0))
            observations.append(obs)
            followings.append(following)
            actions.append(action)
            task_rewards.append(torch.as_tensor(reward, dtype=torch.float32, device=device))
            terminals.append(torch.as_tensor(terminated, device=device))
            truncations.append(truncated)
        n_steps = cfg.rollout_steps * cfg.n_envs
        obs, following = stack(observations), stack(followings)
        action, terminated = torch.cat(actions), torch.cat(terminals)
        disc_keys = model.discriminator_keys
        real = with_absorbing({k: obs[k] for k in disc_keys}, {k: following[k] for k in disc_keys},
                              model.action_input(action), terminated, cfg.absorbing)
        metrics = self.discriminating.update(real)
        reward, imitation = self.discriminating.rewards(real.rows(torch.arange(n_steps, device=device)), terminated,
                                                        torch.cat(task_rewards), step + n_steps)
        reward = (reward + torch.cat(bootstraps)).view(cfg.rollout_steps, cfg.n_envs)
        done = (terminated.view(cfg.rollout_steps, cfg.n_envs) | torch.stack(truncations)).float()
        value = torch.stack(values)
        with torch.no_grad():
            last_value = model.value(as_tensors(episodes.obs, device))
        advantage = torch.zeros_like(reward)
        running = torch.zeros(cfg.n_envs, device=device)
        for t in reversed(range(cfg.rollout_steps)):
            next_value = last_value if t == cfg.rollout_steps - 1 else value[t + 1]
            delta = reward[t] + cfg.gamma * next_value * (1 - done[t]) - value[t]
            running = delta + cfg.gamma * cfg.gae_lambda * (1 - done[t]) * running
            advantage[t] = running
        returns = (advantage + value).flatten()
        advantage = advantage.flatten()
        old_log_prob = torch.cat(log_probs)
        metrics.update(self._update(obs, action, old_log_prob, advantage, returns))
        metrics["imitation_reward"] = imitation.mean()
        return step + n_steps, metrics

    def _update(self, obs, action, old_log_prob, advantage, returns) -> dict:
        cfg, model = self.cfg, self.model
        n = len(advantage)
        size = max(1, n // cfg.minibatches)
        for _ in range(cfg.epochs):
            order = torch.randperm(n, device=advantage.device)
            for start in range(0, n, size):
                rows = order[start:start + size]
                dist = model.distribution({k: v[rows] for k, v in obs.items()})
                log_ratio = dist.log_prob(action[rows]) - old_log_prob[rows]
                ratio = log_ratio.exp()
                adv = advantage[rows]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
                value_loss = 0.5 * ((model.value({k: v[rows] for k, v in obs.items()}) - returns[rows]) ** 2).mean()
                entropy = dist.entropy().mean()
                loss = policy_loss + cfg.value_weight * value_loss - cfg.entropy_weight * entropy
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.train.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.policy_params(), self.train.grad_clip)
                self.optimizer.step()
        with torch.no_grad():
            explained = 1 - float((returns - model.value(obs)).var() / (returns.var() + 1e-8))
        return {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(), "entropy": entropy.detach(),
                "approx_kl": ((ratio - 1) - log_ratio).mean().detach(), "explained_variance": float(explained)}

    def state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load(self, state: dict) -> None:
        load_optimizer(self.optimizer, state["optimizer"])
