"""The pixel encoder's weights channels-last (as it keeps them) against contiguous: one forward and backward pass
of a batch of 96x96 frames, the two layouts interleaved in one process, the ratio per round.

    python tools/bench_channels_last.py [--device cpu|cuda] [--batch 64] [--rounds 3]

Frames arrive (B, H, W, C), so the activations are channels-last from the first convolution on either way; what
changes is whether the convolutions get weights in the same layout or convert them each call.
"""

from __future__ import annotations

import argparse
import time

import torch

from roboil.specs import Feature
from roboil_pixels import PixelEncoderParams, make_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="passes timed per layout and round")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    encoder = make_encoder({"rgb_top": Feature("pixels", (96, 96, 3), "uint8")}, PixelEncoderParams()).to(device)
    frames = {"rgb_top": torch.randint(0, 256, (args.batch, 96, 96, 3), dtype=torch.uint8, device=device)}

    def seconds_a_pass(layout: torch.memory_format) -> float:
        encoder.to(memory_format=layout)
        encoder(frames).sum().backward()  # warm: kernels chosen for this layout
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(args.repeats):
            encoder(frames).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / args.repeats

    for _ in range(args.rounds):
        contiguous, channels_last = seconds_a_pass(torch.contiguous_format), seconds_a_pass(torch.channels_last)
        print(f"{device.type}, batch {args.batch}: contiguous weights {contiguous * 1e3:.0f} ms, channels-last "
              f"{channels_last * 1e3:.0f} ms, channels-last is {contiguous / channels_last:.2f}x")


if __name__ == "__main__":
    main()
