"""Training batches, built while the model steps: by a thread over arrays in RAM, or by worker processes that
read from disk the rows each batch needs (stores larger than ``data.cache_max_gb``).

Either way the sampler draws every batch in this process, so the windows are the ones the in-RAM sampler gives
for the same seed, and each batch comes with the sampler state after its draw: a checkpoint resumes the draws
exactly, however many batches were in flight. Workers only gather and decode the arrays on disk; this process
gathers the ones in RAM. Closing the generator (the training's end) stops the thread or the workers."""

from __future__ import annotations

import atexit
import os
import queue
import signal
import threading
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import RoboilError, leave_stops_to_the_main_process, one_line
from .keys import ACTION
from .rows import RowReader
from .sampler import WindowSampler

Batch = dict[str, torch.Tensor]
THREAD_DEPTH = 3  # batches the thread builds ahead
WORKER_PREFETCH = 4  # batches each worker process builds ahead


def batches(sampler: WindowSampler, batch_size: int, device: torch.device, rows: slice = slice(None),
            workers: int = 0) -> Iterator[tuple[Batch, dict]]:
    """Yield ``(batch on device, sampler state after it)``: only the ``rows`` of each drawn batch (this process's
    share of a distributed run's global batch), pinned for an asynchronous copy on CUDA. ``workers`` > 0 reads
    in that many processes (the sampler's arrays may be zarr arrays: each worker opens them itself)."""
    # the ones built ahead, the one being built and the one in use
    _check_memory(sampler, batch_size, len(range(*rows.indices(batch_size))),
                  (workers * WORKER_PREFETCH if workers else THREAD_DEPTH) + 2)
    made = _in_workers(sampler, batch_size, rows, workers, device) if workers else _in_thread(sampler, batch_size,
                                                                                              rows, device)
    for batch, state in made:
        yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}, state


def _check_memory(sampler: WindowSampler, batch_size: int, rows: int, in_flight: int) -> None:
    """Refuse a batch too large for this machine's memory before gathering it (a mistyped train.batch_size filled
    the memory for minutes, and Ctrl-C waits for a gather to end). Sized from the arrays' shapes, nothing read."""
    steps = {key: len(sampler.obs_offsets) for key in sampler.obs_keys}
    steps |= {ACTION: len(sampler.action_offsets), **dict.fromkeys((*sampler.future_keys, *sampler.next_keys), 1)}
    window = len(sampler.action_offsets) + sum(  # the padding flags, then each array's rows
        steps.get(key, 0) * int(np.prod(_row_shape(array))) * np.dtype(array.dtype).itemsize
        for key, array in sampler.arrays.items())
    batch = rows * window
    available = _available_memory()
    if available is not None and batch * in_flight > available / 2:
        share = f"this process's {rows} windows of a batch of {batch_size} take" if rows < batch_size else \
            f"a batch of {rows} windows takes"  # under torchrun each process gathers its share of the batch
        raise RoboilError(f"train.batch_size: {share} {_size(batch)} and the loader holds {in_flight} at once, "
                          f"more than half of the {_size(available)} of memory available here; use a smaller "
                          "train.batch_size")


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _row_shape(array) -> tuple[int, ...]:
    return array.row_shape if isinstance(array, RowReader) else array.shape[1:]


def _available_memory() -> int | None:
    """Linux's MemAvailable, or less where a cgroup (a container, a Slurm job) limits this process; None
    elsewhere (no check)."""
    try:
        with open("/proc/meminfo") as meminfo:
            available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            available = min(available, int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass  # cgroup v1 or none
    return available


def _in_thread(sampler: WindowSampler, batch_size: int, rows: slice, device: torch.device):
    pin = device.type == "cuda"
    out: queue.Queue = queue.Queue(maxsize=THREAD_DEPTH)
    stop = threading.Event()

    def put(item) -> None:  # until taken, or the training ended (closing this generator)
        while not stop.is_set():
            try:
                return out.put(item, timeout=0.1)
            except queue.Full:
                pass

    def work():
        try:
            while not stop.is_set():
                batch = _tensors(sampler.sample(batch_size, rows))
                put(({k: v.pin_memory() for k, v in batch.items()} if pin else batch, sampler.state()))
        except Exception as exc:  # hand the error to the training loop instead of leaving it waiting
            put(exc)

    worker = threading.Thread(target=work, name="roboil-batches", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        # waited for (one batch at most): a thread still in torch when the process exits aborts it ("terminate
        # called without an active exception", exit code 134) after everything was saved
        _waited_through_interrupts(worker.join)


def _waited_through_interrupts(wait: Callable[[], None]) -> None:
    """``wait()`` for a worker to end, through a second Ctrl-C (the training is stopping already): raised from a
    generator's cleanup, it printed an "Exception ignored" traceback; the interrupt stays flagged, so the command
    still ends as interrupted. A third one while it still waits (a read that hangs) is raised."""
    for patience in (True, True, False):
        try:
            return wait()
        except KeyboardInterrupt:
            if not patience:
                raise


class _Draws(Sampler):
    """The batches' random part, drawn in the training process, with the sampler state after each draw."""

    def __init__(self, sampler: WindowSampler, batch_size: int):
        self.sampler, self.batch_size = sampler, batch_size

    def __iter__(self):
        while True:
            pick, later = self.sampler.draw(self.batch_size)
            yield pick, later, self.sampler.state()


class _Windows(Dataset):
    """Gathers the windows of one draw (its ``rows``), in a worker process; returns them with the draw."""

    def __init__(self, sampler: WindowSampler, rows: slice):
        self.sampler, self.rows = sampler, rows

    def __getitem__(self, draw) -> tuple[Batch | RoboilError, tuple]:
        pick, later, _ = draw
        try:
            return _tensors(self.sampler.windows(pick[self.rows], None if later is None else later[self.rows])), draw
        except RoboilError as exc:  # returned, not raised: the DataLoader would bury its line in a traceback
            return exc, draw


def _tensors(arrays: dict) -> Batch:
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def _set_up_worker(_: int) -> None:
    torch.set_num_threads(1)  # workers decode with numpy and the codecs; torch's threads would fight the model's
    leave_stops_to_the_main_process()  # a dead worker stopped training with "DataLoader worker exited unexpectedly"
    # the AVIF and JPEG XL decoders leave C++ threads whose exit-time destructors abort the process (a "killed by
    # signal" traceback as training ends); a worker has nothing to flush, so it leaves before they run
    atexit.register(os._exit, 0)


def _in_workers(sampler: WindowSampler, batch_size: int, rows: slice, workers: int, device: torch.device):
    # the workers read the arrays on disk; the ones in RAM (state, actions, the cameras that fit) are gathered
    # here from the same draws, rather than copied into every worker
    on_disk = [key for key, array in sampler.arrays.items() if isinstance(array, RowReader)]
    in_ram = sampler.only([key for key in sampler.arrays if key not in on_disk])
    # spawn, not fork: zarr's I/O runs on an event-loop thread, which a forked child would inherit stopped
    loader = DataLoader(_Windows(sampler.only(on_disk), rows), sampler=_Draws(sampler, batch_size), batch_size=None,
                        num_workers=workers, pin_memory=device.type == "cuda", prefetch_factor=WORKER_PREFETCH,
                        multiprocessing_context="spawn", worker_init_fn=_set_up_worker,
                        generator=torch.Generator())  # its seed draw would otherwise shift the training's torch RNG
    previous = signal.getsignal(signal.SIGCHLD)
    made = iter(loader)
    if threading.current_thread() is threading.main_thread():
        # torch's SIGCHLD handler raises a dead worker's error wherever this thread is, mid optimizer step, which
        # leaves no consistent step to save; without it the wait for the next batch finds the worker dead (in 5 s).
        # (A loader iterated before this one installed it already.)
        from_torch = previous is None or getattr(previous, "__module__", "").startswith("torch.")
        signal.signal(signal.SIGCHLD, signal.SIG_DFL if from_torch else previous)
    try:
        for batch, (pick, later, state) in made:  # the draw came back as tensors
            if isinstance(batch, RoboilError):
                raise batch
            later = None if later is None else later.numpy()[rows]
            yield {**batch, **_tensors(in_ram.windows(pick.numpy()[rows], later))}, state
    except RuntimeError as exc:
        if not str(exc).startswith("DataLoader worker"):
            raise
        # a worker's own error comes back returned, as a RoboilError, or raised with its traceback: a worker that
        # simply vanished was killed, most often by the kernel when memory ran out
        raise RoboilError(f"train.loader_workers: a loader process ended without a word ({one_line(exc)}); if "
                          "nothing else killed it, the kernel did when memory ran out (`dmesg` says): use fewer "
                          "train.loader_workers or a smaller train.batch_size") from None
    finally:
        # stops the workers now, not whenever the garbage collector gets to them (its __del__ does the same, but
        # a second Ctrl-C there could only be printed as "Exception ignored")
        _waited_through_interrupts(made._shutdown_workers)
