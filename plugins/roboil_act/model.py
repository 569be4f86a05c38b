"""The ACT model: a CVAE whose decoder is a transformer over observation tokens and a latent token.

Written here (not taken from LeRobot) because LeRobot pins torch < 2.11 and pulls torchvision, which does
not work with our CPU torch; the observation tokens come from roboil's encoders, so pixels and state work
alike. Image feature-map cells carry the pixels encoder's fixed 2-D sine embeddings, the other tokens learned
ones; they are added once at the input, where ACT adds them again at every attention layer.
"""

from __future__ import annotations

import torch
from torch import nn

from roboil import BuildContext, Normalizer, PolicyModel, padded_mean
from roboil.keys import ACTION, ACTION_IS_PAD

from . import ACTConfig


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over the latent dimensions, averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.square() - logvar.exp())).sum(-1).mean()


def _encoder(cfg: ACTConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(cfg.dim_model, cfg.n_heads, cfg.dim_feedforward, cfg.dropout,
                                       batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class ACTPolicy(PolicyModel):
    def __init__(self, context: BuildContext):
        super().__init__()
        cfg: ACTConfig = context.config
        self.config = cfg
        self.n_obs_steps, self.horizon, self.n_action_steps = 1, cfg.chunk_size, cfg.n_action_steps
        self.action_dim = context.action_dim
        dim = cfg.dim_model
        self.obs_keys = sorted(context.features)
        # mean/std, as ACT: a chunk's actions are compared in L1, where min/max would let one outlier set the scale
        self.normalizer = Normalizer({ACTION: context.stats[ACTION]}, {ACTION: "meanstd"})
        self.encoder = context.make_encoder(self.obs_keys, token_dim=dim)
        # the CVAE's encoder reads the low-dimensional state (vectors; images would make it a second backbone)
        self.state_keys = sorted(k for k, f in context.features.items() if len(f.shape) == 1)
        self.state_encoder = context.make_encoder(self.state_keys) if cfg.use_vae and self.state_keys else None
        if cfg.use_vae:
            self.vae_state = nn.Linear(self.state_encoder.output_dim, dim) if self.state_encoder else None
            self.vae_action = nn.Linear(context.action_dim, dim)
            self.vae_cls = nn.Parameter(torch.zeros(1, 1, dim))
            n_inputs = 1 + (self.state_encoder is not None) + cfg.chunk_size
            self.vae_position = nn.Parameter(torch.randn(1, n_inputs, dim) * 0.02)
            self.vae_encoder = _encoder(cfg, cfg.n_vae_encoder_layers)
            self.vae_posterior = nn.Linear(dim, 2 * cfg.latent_dim)  # mean and log-variance
        self.latent = nn.Linear(cfg.latent_dim, dim)
        self.latent_position = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.policy_encoder = _encoder(cfg, cfg.n_encoder_layers)
        decoder_layer = nn.TransformerDecoderLayer(dim, cfg.n_heads, cfg.dim_feedforward, cfg.dropout,
                                                   batch_first=True)
        self.policy_decoder = nn.TransformerDecoder(decoder_layer, cfg.n_decoder_layers)
        self.queries = nn.Parameter(torch.randn(1, cfg.chunk_size, dim) * 0.02)  # one per action of the chunk
        self.action_head = nn.Linear(dim, context.action_dim)

    def parameter_groups(self) -> list[dict]:
        encoders = [self.encoder] + ([self.state_encoder] if self.state_encoder is not None else [])
        encoder_params = {id(p) for e in encoders for p in e.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in encoder_params]
        observed = [p for e in encoders for p in e.parameters() if p.requires_grad]
        if self.config.encoder_lr is None:
            return [{"params": rest + observed}]
        return [{"params": rest}, {"params": observed, "lr": self.config.encoder_lr}]

    def posterior(self, batch: dict[str, torch.Tensor], actions: torch.Tensor, valid: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of z given the state and the (normalized) demonstrated chunk; padded actions
        are masked out of the attention."""
        inputs = [self.vae_cls.expand(actions.shape[0], -1, -1)]
        if self.state_encoder is not None:
            state = self.state_encoder({k: batch[k][:, :1] for k in self.state_keys})  # (B, 1, D_state)
            inputs.append(self.vae_state(state))
        inputs.append(self.vae_action(actions))
        tokens = torch.cat(inputs, dim=1) + self.vae_position
        padding = torch.cat([torch.zeros(actions.shape[0], tokens.shape[1] - actions.shape[1], dtype=torch.bool,
                                         device=valid.device), ~valid], dim=1)
        out = self.vae_encoder(tokens, src_key_padding_mask=padding)[:, 0]
        mu, logvar = self.vae_posterior(out).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, batch: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """The chunk (B, chunk_size, A) in normalized units, from the observation tokens and the latent z."""
        observed = self.encoder.tokens({k: batch[k][:, :1] for k in self.obs_keys})
        latent = self.latent(z).unsqueeze(1) + self.latent_position
        memory = self.policy_encoder(torch.cat([latent, observed], dim=1))
        out = self.policy_decoder(self.queries.expand(z.shape[0], -1, -1), memory)
        return self.action_head(out)

    def compute_loss(self, batch):
        actions = self.normalizer.normalize(ACTION, batch[ACTION].float())
        valid = ~batch[ACTION_IS_PAD]
        batch_size = actions.shape[0]
        if self.config.use_vae:
            mu, logvar = self.posterior(batch, actions, valid)
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            kl = kl_divergence(mu, logvar)
        else:
            z = actions.new_zeros(batch_size, self.config.latent_dim)
            kl = actions.new_zeros(())
        prediction = self.decode(batch, z)
        l1 = padded_mean((prediction - actions).abs(), valid)
        loss = l1 + self.config.kl_weight * kl
        return loss, {"loss": loss.detach(), "l1": l1.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def predict_action(self, obs):
        batch_size = next(iter(obs.values())).shape[0]
        z = torch.zeros(batch_size, self.config.latent_dim, device=self.queries.device)  # the prior's mean
        return self.normalizer.unnormalize(ACTION, self.decode(obs, z))
