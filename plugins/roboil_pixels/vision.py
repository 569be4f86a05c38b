"""Pixel encoder shared by every algorithm: a ResNet-18 with GroupNorm and a spatial-softmax keypoint head.

As in Chi et al. 2023 / robomimic: trained from scratch, BatchNorm replaced by GroupNorm (batch statistics
are a poor fit for small batches and for EMA weights), and global pooling replaced by spatial soft-argmax so
the features keep *where* things are.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from roboil.errors import RoboilError
from roboil.specs import Feature


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(channels // 16, channels)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            group_norm(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            group_norm(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), group_norm(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet18_trunk() -> nn.Sequential:
    """ResNet-18 up to the last stage (512 channels, stride 32), without pooling or fc."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        group_norm(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    c_in = 64
    for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
        c_in = c_out
    return nn.Sequential(*layers)


def feature_map_size(pixels: int) -> int:
    """Cells along one side of the trunk's last map: its five stride-2 layers each give ceil(n / 2)."""
    for _ in range(5):
        pixels = (pixels + 1) // 2
    return pixels


def sine_positions_2d(height: int, width: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed ``(height * width, dim)`` embeddings of a grid's cells, row-major (DETR, ACT): the first half of
    the channels encodes the row, the second the column, each as sines and cosines of geometrically spaced
    frequencies of the coordinate scaled to [0, 2 pi]; channels left over when ``dim`` is not a multiple of 4
    are zero."""
    quarter = dim // 4
    frequencies = temperature ** (-torch.arange(quarter, dtype=torch.float32) / max(quarter, 1))

    def encode(n: int) -> torch.Tensor:  # (n, 2 * quarter)
        angles = ((torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 * torch.pi)[:, None] * frequencies
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    rows = encode(height)[:, None, :].expand(height, width, -1)
    cols = encode(width)[None, :, :].expand(height, width, -1)
    grid = torch.cat([rows, cols], dim=-1).reshape(height * width, 4 * quarter)
    return nn.functional.pad(grid, (0, dim - 4 * quarter))


class SpatialSoftmax(nn.Module):
    """1x1 conv to K heatmaps, softmax over space, expected (x, y) in [-1, 1] per keypoint, then a linear layer."""

    def __init__(self, channels: int, num_keypoints: int, out_dim: int):
        super().__init__()
        self.keypoints = nn.Conv2d(channels, num_keypoints, 1)
        self.out = nn.Linear(2 * num_keypoints, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        attn = self.keypoints(x).flatten(2).softmax(-1)  # (N, K, H*W)
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, h, device=x.device, dtype=attn.dtype),
            torch.linspace(-1, 1, w, device=x.device, dtype=attn.dtype),
            indexing="ij",
        )
        grid = torch.stack([xs.flatten(), ys.flatten()], -1)  # (H*W, 2)
        return self.out((attn @ grid).reshape(n, -1))


def crop_images(images: torch.Tensor, size: tuple[int, int], random: bool) -> torch.Tensor:
    """Crop ``(N, H, W, C)`` to ``(N, *size, C)``: an independent random window per sample, or the centre.

    One gather on the images' device, so augmentation stays on the GPU and needs no per-sample loop.
    """
    n, h, w, _ = images.shape
    ch, cw = size
    if random:
        top = torch.randint(0, h - ch + 1, (n, 1), device=images.device)
        left = torch.randint(0, w - cw + 1, (n, 1), device=images.device)
    else:
        top = torch.full((n, 1), (h - ch) // 2, device=images.device)
        left = torch.full((n, 1), (w - cw) // 2, device=images.device)
    rows = (top + torch.arange(ch, device=images.device))[:, :, None]
    cols = (left + torch.arange(cw, device=images.device))[:, None, :]
    return images[torch.arange(n, device=images.device)[:, None, None], rows, cols]


class PixelEncoder(nn.Module):
    """Maps ``{camera: (N, H, W, 3)}`` images (uint8, or float in 0..255) to ``(N, output_dim)`` features, or
    with :meth:`tokens` to the cells of each camera's last feature map (512 channels), for attention.

    params: a ``PixelEncoderParams`` (crop_ratio, num_keypoints, feature_dim per camera).
    """

    def __init__(self, features: Mapping[str, Feature], params):
        super().__init__()
        crop_ratio, num_keypoints, feature_dim = params.crop_ratio, params.num_keypoints, params.feature_dim
        self.keys = tuple(sorted(features))  # a ModuleList, as store keys may hold dots that ModuleDict rejects
        self.crop_sizes = []
        for key in self.keys:
            shape = tuple(features[key].shape)
            if len(shape) != 3 or shape[2] != 3:
                raise RoboilError(f"pixels encoder: {key!r} must have shape (H, W, 3), got {shape}")
            crop = (round(shape[0] * crop_ratio), round(shape[1] * crop_ratio))
            if min(crop) < 33:  # the trunk has stride 32: a 1x1 map would make every keypoint a constant
                raise RoboilError(f"pixels encoder: {key!r} crops to {crop}; images must crop to at least 33x33 px")
            self.crop_sizes.append(crop)
        self.backbones = nn.ModuleList(
            nn.Sequential(resnet18_trunk(), SpatialSoftmax(512, num_keypoints, feature_dim)) for _ in self.keys
        )
        # Frames arrive (B, H, W, C), so the activations are channels-last from the first convolution on; weights
        # laid out alike spare a conversion per call (on this CPU 1.02-1.04x; on GPUs it is cuDNN's fast layout).
        self.backbones.to(memory_format=torch.channels_last)
        self.output_dim = feature_dim * len(self.keys)

    def _inputs(self, images: Mapping[str, torch.Tensor]):
        for key, size, backbone in zip(self.keys, self.crop_sizes, self.backbones):
            x = crop_images(images[key], size, random=self.training)  # gather uint8: a quarter of the bytes of float
            yield x.permute(0, 3, 1, 2).float().div_(255.0), backbone

    def forward(self, images: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([backbone(x) for x, backbone in self._inputs(images)], dim=-1)

    def token_positions(self, dim: int) -> torch.Tensor:
        """2-D sine embeddings of the :meth:`tokens`' cells; the cameras' maps sit side by side, as in ACT."""
        grids = [(feature_map_size(h), feature_map_size(w)) for h, w in self.crop_sizes]
        height, width = max(h for h, _ in grids), sum(w for _, w in grids)
        table = sine_positions_2d(height, width, dim).reshape(height, width, dim)
        cells, left = [], 0
        for h, w in grids:
            cells.append(table[:h, left: left + w].reshape(h * w, dim))
            left += w
        return torch.cat(cells)

    def tokens(self, images: Mapping[str, torch.Tensor]) -> torch.Tensor:
        trunk_index = 0  # each backbone is (trunk, spatial-softmax head)
        return torch.cat([backbone[trunk_index](x).flatten(2).transpose(1, 2) for x, backbone in self._inputs(images)],
                         dim=1)
