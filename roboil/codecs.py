"""Lossy image codecs for the episode store: each chunk, one uint8 frame, kept as a JPEG, JPEG XL or AVIF image.

:class:`ImageCodec` is a zarr v3 array-to-bytes codec, registered with zarr as ``roboil_image`` when this module is
imported (the store imports it), so an array's ``zarr.json`` names it and its format and quality. A chunk holds
exactly one frame: a lossy codec would re-encode, and so degrade, the frames already in a chunk each time an append
added to it. The encoders come from ``imagecodecs``, an optional dependency (``pip install roboil[codecs]``); this
module imports it only when a frame is encoded or decoded.

Encoder settings (not needed to decode, so not in the metadata): JPEG with 4:4:4 chroma and optimized Huffman
tables (camera frames are small and full of sharp coloured edges that 4:2:0 smears), JPEG XL at libjxl's default
effort, AVIF at speed 8 (libavif's default takes ~0.3 s per 96x96 frame). One thread each: zarr already encodes
and decodes chunks concurrently.

Error, at quality 90 on rendered camera frames (tests/test_codecs.py holds every codec to it): the mean absolute
error stays within 2 levels of 255 and the 99.9th percentile within 32; the few largest errors sit on sharp
coloured edges (up to ~120 for JPEG XL). On PushT's 96x96 top camera: mean 0.7 (JPEG), 0.8 (JPEG XL), 0.3 (AVIF).
Sizes: rendered scenes are flat colour, which Blosc already packs to ~1.3 kB a PushT frame, where JPEG (2.1 kB)
and JPEG XL (1.7 kB) come out larger and only AVIF (1.0 kB) smaller; on ALOHA's 640x480 top camera (29 kB
lossless) JPEG saves 30%, JPEG XL 44%, AVIF 61%. Decoding costs more: per frame there, Blosc ~0.35 ms, JPEG
~1 ms, AVIF ~2.6 ms, JPEG XL ~7 ms.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

from .errors import RoboilError

LOSSLESS = "lossless"  # Blosc, the store's default: not a codec of this module
IMAGE_FORMATS = {"jpeg": "JPEG8", "jpegxl": "JPEGXL", "avif": "AVIF"}  # ours -> imagecodecs' codec class
CODECS = (LOSSLESS, *IMAGE_FORMATS)
INSTALL = "pip install roboil[codecs]"
CODEC_NAME = "roboil_image"  # as zarr.json names it


def unavailable(image_format: str) -> str | None:
    """Why imagecodecs cannot encode or decode ``image_format`` here (None if it can), to say "needs imagecodecs
    (why); pip install roboil[codecs]"."""
    try:
        import imagecodecs
    except ImportError:
        return "imagecodecs is not installed"
    if not getattr(imagecodecs, IMAGE_FORMATS[image_format]).available:
        return f"imagecodecs {imagecodecs.__version__} here is built without it"
    return None


def frame_shape_problem(shape: tuple[int, ...], dtype) -> str | None:
    """Why rows of ``shape``/``dtype`` are not images an image codec stores; None if they are."""
    if np.dtype(dtype) != np.uint8 or len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3)):
        return f"rows are {tuple(shape)} {np.dtype(dtype)}, not uint8 images (H, W), (H, W, 1) or (H, W, 3)"
    return None


def encode_frame(image_format: str, frame: np.ndarray, quality: int) -> bytes:
    """One uint8 image, (H, W) or (H, W, 3), as a file of ``image_format`` with the settings above."""
    import imagecodecs

    if image_format == "jpeg":
        return imagecodecs.jpeg8_encode(frame, level=quality, subsampling="444", optimize=True)
    if image_format == "jpegxl":
        return imagecodecs.jpegxl_encode(frame, level=quality, numthreads=1)
    return imagecodecs.avif_encode(frame, level=quality, speed=8, numthreads=1)


def decode_frame(image_format: str, data: bytes) -> np.ndarray:
    """The image in a chunk's bytes (all of them: a chunk holds one frame), as imagecodecs gives it."""
    import imagecodecs

    if image_format == "jpeg":
        return imagecodecs.jpeg8_decode(data)
    if image_format == "jpegxl":
        return imagecodecs.jpegxl_decode(data, numthreads=1)
    return imagecodecs.avif_decode(data, numthreads=1)


@dataclass(frozen=True)
class ImageCodec(ArrayBytesCodec):
    """A chunk of shape (1, H, W[, C]) uint8 as one image file of ``image_format`` at ``quality`` (1..100)."""

    is_fixed_size = False

    image_format: str
    quality: int

    def __init__(self, *, image_format: str, quality: int) -> None:
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, not {image_format!r}")
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ValueError(f"image quality must be an integer from 1 to 100, not {quality!r}")
        object.__setattr__(self, "image_format", image_format)
        object.__setattr__(self, "quality", quality)

    @classmethod
    def from_dict(cls, data: dict) -> "ImageCodec":
        _, configuration = parse_named_configuration(data, CODEC_NAME)
        return cls(**configuration)

    def to_dict(self) -> dict:
        return {"name": CODEC_NAME, "configuration": {"image_format": self.image_format, "quality": self.quality}}

    def _require(self) -> None:
        if reason := unavailable(self.image_format):
            raise RoboilError(f"{self.image_format} frames need imagecodecs ({reason}); {INSTALL}")

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec) -> Buffer:
        self._require()
        frames = chunk_array.as_numpy_array()
        if frames.shape[0] != 1 or frame_shape_problem(frames.shape[1:], frames.dtype):
            raise ValueError(f"{CODEC_NAME} stores one uint8 image per chunk, got a chunk {frames.shape} "
                             f"{frames.dtype}")
        frame = np.ascontiguousarray(frames[0].squeeze(-1) if frames.ndim == 4 and frames.shape[3] == 1
                                     else frames[0])
        return chunk_spec.prototype.buffer.from_bytes(encode_frame(self.image_format, frame, self.quality))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec) -> NDBuffer:
        self._require()
        frame = decode_frame(self.image_format, chunk_bytes.to_bytes())
        if frame.size != np.prod(chunk_spec.shape):
            raise ValueError(f"a {self.image_format} image of {frame.shape} in a chunk of {chunk_spec.shape}")
        return chunk_spec.prototype.nd_buffer.from_numpy_array(frame.reshape(chunk_spec.shape))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec) -> Buffer:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)  # the encoders release the GIL

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec) -> int:
        raise NotImplementedError  # variable: it depends on the image


register_codec(CODEC_NAME, ImageCodec)
