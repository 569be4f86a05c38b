"""Data-parallel training over the processes ``torchrun`` launches (GPUs of one machine, or several machines).

The same config means the same training: ``train.batch_size`` is the global batch. Every process draws the
same batch from the same sampler state and computes the loss on its own slice (batch_size / N rows); DDP
averages the gradients, so N processes take the steps one process takes, up to floating-point rounding, and
the learning rate needs no scaling. Logged metrics are averaged over the processes. Process 0 alone writes
``metrics.jsonl`` and checkpoints; every process resumes from the newest one, each with its own random state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.distributed as dist

from .errors import RoboilError


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the ones launched together (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def batch_rows(self, batch_size: int) -> slice:
        """This process's rows of a global batch."""
        if batch_size % self.size:
            raise RoboilError(f"train.batch_size={batch_size} does not split over {self.size} processes; it is the "
                              f"global batch: use a multiple of {self.size}")
        share = batch_size // self.size
        return slice(self.rank * share, (self.rank + 1) * share)


def launched_ranks() -> Ranks:
    """The ranks torchrun (or any launcher setting its variables) gave this process."""
    try:
        return Ranks(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                     int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise RoboilError("RANK, WORLD_SIZE or LOCAL_RANK is not a number; launch with torchrun, or unset them")


def start(ranks: Ranks, device: torch.device) -> torch.device:
    """Join the process group (NCCL for CUDA tensors, gloo for CPU ones: the logged metrics are gathered on the
    CPU); returns this process's device (its own GPU)."""
    if not ranks.distributed:
        return device
    if device.type == "cuda":
        if ranks.local_rank >= torch.cuda.device_count():
            raise RoboilError(f"process {ranks.local_rank} of this machine has no GPU of its own (the machine has "
                              f"{torch.cuda.device_count()}); launch at most that many with --nproc_per_node")
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(metrics: Mapping[str, Any], ranks: Ranks) -> dict[str, float]:
    """The metrics averaged over every process (one collective for all of them)."""
    values = torch.tensor([float(v) for v in metrics.values()], dtype=torch.float64)
    if ranks.distributed:
        dist.all_reduce(values)
        values /= ranks.size
    return dict(zip(metrics, values.tolist()))


class StopVote:
    """``vote(flag)``: whether any process raised its flag, agreed without waiting. Each step's flags go out as an
    asynchronous CPU all-reduce (gloo: no GPU waits) that is read a step later, when it has long arrived, so every
    process learns the same answer at the same step, one step after the flag. ``close()`` before the group ends."""

    def __init__(self, ranks: Ranks):
        self.ranks = ranks
        self._pending: tuple[Any, torch.Tensor] | None = None

    def __call__(self, flag: bool) -> bool:
        if not self.ranks.distributed:
            return flag
        agreed = self.close()
        value = torch.tensor([int(flag)])
        self._pending = (dist.all_reduce(value, op=dist.ReduceOp.MAX, async_op=True), value)
        return agreed

    def close(self) -> bool:
        """Wait for the vote in flight; returns it (False when none is)."""
        if self._pending is None:
            return False
        (work, value), self._pending = self._pending, None
        work.wait()
        return bool(value.item())


def gather(value: Any, ranks: Ranks) -> list:
    """Every process's ``value`` (a picklable object), in rank order."""
    if not ranks.distributed:
        return [value]
    values: list = [None] * ranks.size
    dist.all_gather_object(values, value)
    return values


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()
