"""The shared pixel encoder: ResNet-18 with GroupNorm and a spatial-softmax head."""

import math

import pytest
import torch
from torch import nn

from roboil.errors import RoboilError
from roboil.specs import Feature
from roboil_pixels import PixelEncoderParams
from roboil_pixels.vision import PixelEncoder, SpatialSoftmax, crop_images, sine_positions_2d


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    features = {"top": Feature("pixels", (64, 64, 3), "uint8"), "wrist.cam": Feature("pixels", (48, 64, 3), "uint8")}
    return PixelEncoder(features, PixelEncoderParams(crop_ratio=0.8, feature_dim=16))


def images(n=3):
    return {
        "top": torch.randint(0, 256, (n, 64, 64, 3), dtype=torch.uint8),
        "wrist.cam": torch.randint(0, 256, (n, 48, 64, 3), dtype=torch.uint8),
    }


def test_output_shape(encoder):
    assert encoder.output_dim == 32
    assert encoder.eval()(images()).shape == (3, 32)


def test_float_input_matches_uint8(encoder):
    batch = images()
    encoder.eval()
    torch.testing.assert_close(encoder(batch), encoder({k: v.float() for k, v in batch.items()}))


def test_crop_random_in_train_centred_in_eval(encoder):
    # each pixel holds its own coordinates, so a crop tells where it was taken
    rows, cols = torch.meshgrid(torch.arange(10), torch.arange(12), indexing="ij")
    grid = torch.stack([rows, cols, torch.zeros_like(rows)], -1).expand(64, 10, 12, 3)
    crops = crop_images(grid, (6, 8), random=True)
    assert crops.shape == (64, 6, 8, 3)
    top, left = crops[:, 0, 0, 0], crops[:, 0, 0, 1]
    offsets = torch.stack([top, left, 0 * top], -1)[:, None, None]
    torch.testing.assert_close(crops, grid[:1, :6, :8].expand_as(crops) + offsets)  # contiguous windows
    assert top.max() <= 4 and left.max() <= 4 and len(set(zip(top.tolist(), left.tolist()))) > 5
    torch.testing.assert_close(crop_images(grid, (6, 8), random=False), grid[:, 2:8, 2:10])

    batch = images()
    encoder.train()
    assert not torch.allclose(encoder(batch), encoder(batch))
    encoder.eval()
    torch.testing.assert_close(encoder(batch), encoder(batch))


def test_tokens_are_the_cells_of_each_cameras_feature_map(encoder):
    tokens = encoder.eval().tokens(images())
    # crops 51x51 and 38x51 px at stride 32: 2x2 and 2x2 cells of 512 channels
    assert tokens.shape == (3, 8, 512)


def test_gradient_flows(encoder):
    encoder.train()
    encoder.zero_grad()
    encoder(images(2)).square().sum().backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_too_small_images_are_a_clear_error():
    with pytest.raises(RoboilError, match="at least 33x33"):
        PixelEncoder({"cam": Feature("pixels", (32, 32, 3), "uint8")}, PixelEncoderParams())


def test_groupnorm_not_batchnorm(encoder):
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in encoder.modules())
    norms = [m for m in encoder.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(m.num_groups == m.num_channels // 16 for m in norms)


def test_convolutions_run_channels_last(encoder):
    """Frames arrive (B, H, W, C): the activations stay channels-last through the trunk, and so do the weights."""
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    layouts = []
    hooks = [m.register_forward_hook(lambda m, i, out: layouts.append(
        out.is_contiguous(memory_format=torch.channels_last))) for m in convs]
    try:
        encoder.eval()(images())
    finally:
        for hook in hooks:
            hook.remove()
    assert len(layouts) == len(convs) and all(layouts)


def test_spatial_softmax_finds_the_peak():
    head = SpatialSoftmax(channels=1, num_keypoints=1, out_dim=2)
    with torch.no_grad():
        head.keypoints.weight.fill_(100.0)
        head.keypoints.bias.zero_()
        head.out.weight.copy_(torch.eye(2))
        head.out.bias.zero_()
    x = torch.zeros(1, 1, 5, 9)
    x[0, 0, 4, 0] = 1.0  # bottom-left corner
    torch.testing.assert_close(head(x), torch.tensor([[-1.0, 1.0]]), atol=1e-3, rtol=0)


def test_sine_positions_against_a_hand_computed_grid():
    # dim 4: one frequency (1) per half; coordinates (i + 0.5) / n * 2 pi
    table = sine_positions_2d(1, 2, 5)  # the fifth channel is left over: zero
    row = [math.sin(math.pi), math.cos(math.pi)]
    expected = torch.tensor([row + [math.sin(math.pi / 2), math.cos(math.pi / 2), 0.0],
                             row + [math.sin(3 * math.pi / 2), math.cos(3 * math.pi / 2), 0.0]])
    torch.testing.assert_close(table, expected)
    assert len({tuple(r) for r in sine_positions_2d(3, 4, 16).round(decimals=5).tolist()}) == 12  # all distinct


def test_token_positions_cover_every_cell_of_every_camera(encoder):
    positions = encoder.token_positions(32)
    assert positions.shape == (8, 32)  # as many as tokens: 2x2 cells per camera
    assert len({tuple(r) for r in positions.round(decimals=5).tolist()}) == 8  # cameras side by side, not reused
