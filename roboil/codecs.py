"""Lossy codecs for the episode store's camera arrays: a chunk of uint8 frames kept as one JPEG, JPEG XL or AVIF
image (a frame per chunk), or as one short H.264 video (several frames per chunk).

:class:`ImageCodec` is a zarr v3 array-to-bytes codec, registered with zarr as ``roboil_image`` when this module is
imported (the store imports it), so an array's ``zarr.json`` names it and its format and quality. The image
formats keep exactly one frame per chunk: a lossy codec would re-encode, and so degrade, the frames already in a
chunk each time an append added to it. The encoders come from ``imagecodecs`` and ``av`` (PyAV, FFmpeg's
libraries in-process), optional dependencies (``pip install roboil[codecs]``); this module imports them only when
a frame is encoded or decoded.

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

H.264: no image codec gets near a video's size (each frame is coded alone; a video codes most frames as their
difference from the one before), so ``h264`` keeps each chunk of :data:`H264_CHUNK_FRAMES` frames as one stream,
a keyframe and then predicted frames (libx264, 4:4:4 chroma, no B-frames, one thread, constant rate factor
``round((100 - quality) * 0.51)``). A read decodes the chunk up to the last frame it wants. Measured on PushT's
96x96 frames: 511 bytes a frame at quality 90 (mean error 0.17), 274 at quality 65 (0.58), where LeRobot's H.264
files take 108 at error 1.0 and Blosc 1,305; decoding ~0.55 ms a frame. An append that adds to a chunk holding
the end of the previous episode re-encodes that chunk: those frames (fewer than a chunk) go through the encoder
once more. Checksums cover the encoded chunks an episode completed, and the last episode's tail checksum its
unfinished chunk, checked only while no append is in flight (see :mod:`roboil.store`), so that rewrite never
breaks a committed checksum.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

from .errors import RoboilError

LOSSLESS = "lossless"  # Blosc, the store's default: not a codec of this module
IMAGE_FORMATS = {"jpeg": "JPEG8", "jpegxl": "JPEGXL", "avif": "AVIF"}  # ours -> imagecodecs' codec class
VIDEO = "h264"
CODECS = (LOSSLESS, *IMAGE_FORMATS, VIDEO)
INSTALL = "pip install roboil[codecs]"
CODEC_NAME = "roboil_image"  # as zarr.json names it
# Frames per H.264 chunk (the group of pictures). Measured on PushT at quality 65: 4 frames take 398 bytes a
# frame, 8 take 274, 16 take 212; a read decodes a chunk up to its frame, so longer groups make random reads slower.
H264_CHUNK_FRAMES = 8


def coding(codec: str, quality: int) -> str:
    """How an array is coded, for messages: ``lossless``, or the codec with its quality."""
    return codec if codec == LOSSLESS else f"{codec} (quality {quality})"


def chunk_frames(codec: str) -> int:
    """Frames per chunk for camera arrays kept with ``codec``: a whole H.264 group of pictures, else one frame
    (a window then decodes only the frames it needs)."""
    return H264_CHUNK_FRAMES if codec == VIDEO else 1


def unavailable(image_format: str) -> str | None:
    """Why ``image_format`` cannot be encoded or decoded here (None if it can), to say "needs <library> (why);
    pip install roboil[codecs]"."""
    if image_format == VIDEO:
        try:
            import av
        except ImportError:
            return "PyAV is not installed"
        if "libx264" not in av.codecs_available or "h264" not in av.codecs_available:
            return f"PyAV {av.__version__} here is built without libx264"
        return None
    try:
        import imagecodecs
    except ImportError:
        return "imagecodecs is not installed"
    if not getattr(imagecodecs, IMAGE_FORMATS[image_format]).available:
        return f"imagecodecs {imagecodecs.__version__} here is built without it"
    return None


def library(image_format: str) -> str:
    """The optional library that codes ``image_format``, for error messages."""
    return "av" if image_format == VIDEO else "imagecodecs"


def frame_shape_problem(image_format: str, shape: tuple[int, ...], dtype) -> str | None:
    """Why rows of ``shape``/``dtype`` are not images ``image_format`` stores; None if they are."""
    if image_format == VIDEO:
        if np.dtype(dtype) != np.uint8 or len(shape) != 3 or shape[2] != 3:
            return f"rows are {tuple(shape)} {np.dtype(dtype)}, not uint8 colour images (H, W, 3)"
        return None
    if np.dtype(dtype) != np.uint8 or len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3)):
        return f"rows are {tuple(shape)} {np.dtype(dtype)}, not uint8 images (H, W), (H, W, 1) or (H, W, 3)"
    return None


def encode_video(frames: np.ndarray, quality: int) -> bytes:
    """(N, H, W, 3) uint8 frames as one H.264 stream: a keyframe, then frames predicted from the one before."""
    import av
    from av.video.reformatter import VideoReformatter

    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
    encoder.time_base = Fraction(1, 10)  # any: the stream carries no timing we use
    encoder.thread_count = 1
    encoder.options = {"crf": str(round((100 - quality) * 0.51)), "bf": "0", "g": str(len(frames)),
                       "x264-params": "scenecut=0"}  # exactly one keyframe, the first
    packets, to_yuv = [], VideoReformatter()  # one colour conversion context a chunk: one a frame took ~2 ms each
    for i, frame in enumerate(frames):
        picture = to_yuv.reformat(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"),
                                  format="yuv444p")
        picture.pts = i
        packets += encoder.encode(picture)
    packets += encoder.encode(None)
    return b"".join(bytes(p) for p in packets)


def decode_video(data: bytes, wanted: np.ndarray | None = None) -> np.ndarray:
    """The (N, H, W, 3) frames of an :func:`encode_video` stream, or only those at the sorted indices ``wanted``:
    decoding stops after the last of them and only they are converted to RGB (the conversion costs more than
    the decoding), so a read of a frame or two out of a chunk costs about a third of the whole chunk's."""
    import av
    from av.video.reformatter import VideoReformatter

    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_count = 1  # and no B-frames: each packet gives its picture at once
    needed = None if wanted is None else int(wanted[-1]) + 1
    pictures = []
    for packet in [*decoder.parse(data), *decoder.parse(None)]:
        pictures += decoder.decode(packet)
        if needed is not None and len(pictures) >= needed:
            break
    else:
        pictures += decoder.decode(None)
    if len(pictures) < (needed or 1):
        raise ValueError(f"{len(pictures)} H.264 frames in the chunk, frame {(needed or 1) - 1} wanted")
    to_rgb = VideoReformatter()  # as in encode_video
    return np.stack([to_rgb.reformat(pictures[i], format="rgb24").to_ndarray()
                     for i in (range(len(pictures)) if wanted is None else wanted.tolist())])


def encode_frame(image_format: str, frame: np.ndarray, quality: int) -> bytes:
    """One uint8 image, (H, W) or (H, W, 3), as a file of an image format with the settings above."""
    import imagecodecs

    if image_format == "jpeg":
        return imagecodecs.jpeg8_encode(frame, level=quality, subsampling="444", optimize=True)
    if image_format == "jpegxl":
        return imagecodecs.jpegxl_encode(frame, level=quality, numthreads=1)
    return imagecodecs.avif_encode(frame, level=quality, speed=8, numthreads=1)


def decode_chunk(image_format: str, data: bytes) -> np.ndarray:
    """The frames in a chunk's bytes: an image as imagecodecs gives it, or a video's (N, H, W, 3) frames."""
    if image_format == VIDEO:
        return decode_video(data)
    import imagecodecs

    if image_format == "jpeg":
        return imagecodecs.jpeg8_decode(data)
    if image_format == "jpegxl":
        return imagecodecs.jpegxl_decode(data, numthreads=1)
    return imagecodecs.avif_decode(data, numthreads=1)


@dataclass(frozen=True)
class ImageCodec(ArrayBytesCodec):
    """A chunk of shape (1, H, W[, C]) uint8 as one image file of ``image_format`` at ``quality`` (1..100), or of
    shape (N, H, W, 3) as one H.264 stream."""

    is_fixed_size = False

    image_format: str
    quality: int

    def __init__(self, *, image_format: str, quality: int) -> None:
        if image_format not in (*IMAGE_FORMATS, VIDEO):
            raise ValueError(f"image format must be one of {', '.join((*IMAGE_FORMATS, VIDEO))}, not "
                             f"{image_format!r}")
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
            raise RoboilError(f"{self.image_format} frames need {library(self.image_format)} ({reason}); {INSTALL}")

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec) -> Buffer:
        self._require()
        frames = chunk_array.as_numpy_array()
        if self.image_format == VIDEO:
            if frame_shape_problem(VIDEO, frames.shape[1:], frames.dtype):
                raise ValueError(f"{CODEC_NAME} stores h264 chunks of uint8 (N, H, W, 3), got {frames.shape} "
                                 f"{frames.dtype}")
            return chunk_spec.prototype.buffer.from_bytes(encode_video(frames, self.quality))
        if frames.shape[0] != 1 or frame_shape_problem(self.image_format, frames.shape[1:], frames.dtype):
            raise ValueError(f"{CODEC_NAME} stores one uint8 image per chunk, got a chunk {frames.shape} "
                             f"{frames.dtype}")
        frame = np.ascontiguousarray(frames[0].squeeze(-1) if frames.ndim == 4 and frames.shape[3] == 1
                                     else frames[0])
        return chunk_spec.prototype.buffer.from_bytes(encode_frame(self.image_format, frame, self.quality))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec) -> NDBuffer:
        self._require()
        frames = decode_chunk(self.image_format, chunk_bytes.to_bytes())
        if frames.size != np.prod(chunk_spec.shape):
            raise ValueError(f"{self.image_format} frames of {frames.shape} in a chunk of {chunk_spec.shape}")
        return chunk_spec.prototype.nd_buffer.from_numpy_array(frames.reshape(chunk_spec.shape))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec) -> Buffer:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)  # the encoders release the GIL

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec) -> int:
        raise NotImplementedError  # variable: it depends on the image


register_codec(CODEC_NAME, ImageCodec)
