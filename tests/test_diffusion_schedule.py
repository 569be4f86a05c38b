"""The DDPM/DDIM schedule against its closed forms."""

import math

import numpy as np
import pytest
import torch

from roboil_diffusion.schedule import NoiseSchedule


def closed_form_schedule(n: int) -> np.ndarray:
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    betas = np.array([min(1 - f((i + 1) / n) / f(i / n), 0.999) for i in range(n)])
    return betas, np.cumprod(1 - betas)


@pytest.mark.parametrize("n", [100, 1000])
def test_squaredcos_betas_and_alphas_cumprod(n):
    schedule = NoiseSchedule(num_train_timesteps=n)
    betas, abar = closed_form_schedule(n)
    np.testing.assert_allclose(schedule.betas.numpy(), betas, rtol=1e-6)
    np.testing.assert_allclose(schedule.alphas_cumprod.numpy(), abar, rtol=1e-5, atol=1e-12)
    assert schedule.betas.max().item() == pytest.approx(0.999)  # the last beta hits the cap
    assert torch.all(schedule.betas > 0)


def test_schedule_stays_out_of_checkpoints():
    assert NoiseSchedule().state_dict() == {}


def test_add_noise():
    schedule = NoiseSchedule(100)
    x0, eps = torch.randn(5, 16, 3), torch.randn(5, 16, 3)
    t = torch.tensor([0, 10, 50, 98, 99])
    abar = schedule.alphas_cumprod[t].view(-1, 1, 1)
    expected = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    torch.testing.assert_close(schedule.add_noise(x0, eps, t), expected)


def test_leading_timesteps():
    assert NoiseSchedule(100, 10).timesteps == list(range(90, -1, -10))
    assert NoiseSchedule(100, 3).timesteps == [66, 33, 0]


def test_ddim_step_closed_form():
    schedule = NoiseSchedule(100, 10)
    x, eps = torch.randn(4, 8, 2), torch.randn(4, 8, 2)
    abar = schedule.alphas_cumprod.double()
    for t, prev_abar in ((50, abar[40]), (0, torch.tensor(1.0, dtype=torch.float64))):
        x0 = ((x.double() - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()).clamp(-1, 1)
        expected = prev_abar.sqrt() * x0 + (1 - prev_abar).sqrt() * eps
        torch.testing.assert_close(schedule.ddim_step(eps, t, x), expected.float(), rtol=1e-4, atol=1e-5)


def test_ddim_with_epsilon_oracle_recovers_x0():
    schedule = NoiseSchedule(100, 10)
    x0 = torch.rand(6, 16, 2) * 1.8 - 0.9
    abar = schedule.alphas_cumprod

    def oracle(x, t):  # the exact noise that explains x_t given the true x0
        a = abar[t].view(-1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    start = torch.full((6,), schedule.timesteps[0])
    x_t = schedule.add_noise(x0, torch.randn_like(x0), start)
    torch.testing.assert_close(schedule.sample(oracle, x_t), x0, rtol=0, atol=1e-5)
