"""Candidate ways to cut a face window out of a JPEG, timed against each other on one core.

Run ``python -m bench.decoders``. Every candidate goes from the file's bytes to a 512 px upright
RGB crop of the same window; the mean absolute difference is against the full decode (Pillow:
``exif_transpose``, crop, LANCZOS), in 8-bit levels.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import pyvips  # type: ignore[import-untyped]
from PIL import Image, ImageOps

from bench import library
from faceset.crop import decode, geometry, libjpeg
from faceset.model import Box

SIZE = 512
Crop = Callable[[bytes, library.BenchPhoto], Image.Image]


def reference(data: bytes, photo: library.BenchPhoto) -> Image.Image:
    full = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    w = photo.window
    return full.crop((w.left, w.top, w.right, w.bottom)).resize(
        (SIZE, SIZE), Image.Resampling.LANCZOS
    )


def _stored(photo: library.BenchPhoto) -> Box:
    return geometry.to_stored(photo.window, *photo.size, photo.orientation)


def pillow_stored(data: bytes, photo: library.BenchPhoto) -> Image.Image:
    """Full decode, crop in stored coordinates, turn only the result."""
    s = _stored(photo)
    image = Image.open(io.BytesIO(data)).convert("RGB")
    small = image.resize(
        (SIZE, SIZE), Image.Resampling.LANCZOS, box=(s.left, s.top, s.right, s.bottom)
    )
    return decode.upright(small, photo.orientation)


def pillow_draft(data: bytes, photo: library.BenchPhoto) -> Image.Image:
    """faceset's general path: Pillow ``draft`` (DCT scaling), crop first, Pillow LANCZOS."""
    opened = decode.open_photo(data)
    opened.data = b""  # no bytes: the fast path is not taken
    return decode.upright(decode.read_window(opened, _stored(photo), SIZE), photo.orientation)


def simplejpeg_scaled(data: bytes, photo: library.BenchPhoto) -> Image.Image:
    """simplejpeg (libjpeg-turbo 3) scaled decode of the whole photo, crop, vips Lanczos-3."""
    import simplejpeg  # only here: a benchmark candidate, not a dependency

    s = _stored(photo)
    scale = decode.dct_scale(s.width, SIZE)
    pixels = (
        simplejpeg.decode_jpeg(data, min_factor=scale)
        if scale > 1
        else simplejpeg.decode_jpeg(data)
    )
    f = Image.open(io.BytesIO(data)).width / pixels.shape[1]
    box = pixels[round(s.top / f) : round(s.bottom / f), round(s.left / f) : round(s.right / f)]
    return decode.upright(_vips_resize(box), photo.orientation)


def vips_sequential(data: bytes, photo: library.BenchPhoto) -> Image.Image:
    """pyvips: shrink-on-load, sequential (stops after the window), crop first, Lanczos-3."""
    s = _stored(photo)
    scale = decode.dct_scale(s.width, SIZE)
    image = pyvips.Image.new_from_buffer(data, "", access="sequential", shrink=scale)
    left, top = round(s.left / scale), round(s.top / scale)
    side = min(round(s.width / scale), image.width - left, image.height - top)
    out = image.crop(left, top, side, side).resize(SIZE / side, kernel="lanczos3")
    small = Image.frombytes("RGB", (out.width, out.height), out.write_to_memory())
    return decode.upright(small, photo.orientation)


def libjpeg_box_pillow(data: bytes, photo: library.BenchPhoto) -> Image.Image:
    """The system libjpeg-turbo decoding only the window, resized by Pillow's LANCZOS."""
    s = _stored(photo)
    scale = decode.dct_scale(s.width, SIZE)
    box = (
        math.floor(s.left / scale),
        math.floor(s.top / scale),
        math.ceil(s.right / scale),
        math.ceil(s.bottom / scale),
    )
    rows, start = libjpeg.read_box(data, box, scale, gray=False)
    pixels = rows[:, start : start + box[2] - box[0]]
    small = Image.fromarray(np.ascontiguousarray(pixels)).resize(
        (SIZE, SIZE), Image.Resampling.LANCZOS
    )
    return decode.upright(small, photo.orientation)


def faceset_fast(data: bytes, photo: library.BenchPhoto) -> Image.Image:
    """faceset's fast path: libjpeg-turbo decodes only the window, libvips resizes."""
    opened = decode.open_photo(data)
    return decode.upright(decode.read_window(opened, _stored(photo), SIZE), photo.orientation)


def faceset_fast_headroom_1(data: bytes, photo: library.BenchPhoto) -> Image.Image:
    """faceset's fast path, but DCT-scaled as far as leaves the window at least the output size,
    where faceset keeps twice it: what the speed costs in detail (the sharpness column)."""
    opened = decode.open_photo(data)
    window = decode.read_window(opened, _stored(photo), SIZE, headroom=1)
    return decode.upright(window, photo.orientation)


def _vips_resize(pixels: np.ndarray) -> Image.Image:  # type: ignore[type-arg]
    pixels = np.ascontiguousarray(pixels)
    h, w, bands = pixels.shape
    out = pyvips.Image.new_from_memory(pixels.data, w, h, bands, "uchar").resize(
        SIZE / w, kernel="lanczos3"
    )
    return Image.frombytes("RGB", (out.width, out.height), out.write_to_memory()).resize(
        (SIZE, SIZE)
    )


def _turbojpeg_status() -> str:
    try:
        from turbojpeg import TurboJPEG  # type: ignore[import-untyped]

        TurboJPEG()
    except Exception as e:
        return str(e).strip().splitlines()[0]
    return "loaded (not measured: its region decode needs the TurboJPEG 3 API)"


CANDIDATES: dict[str, Crop] = {
    "Pillow full decode, exif_transpose, crop, LANCZOS (reference)": reference,
    "Pillow full decode, crop in stored coordinates": pillow_stored,
    "Pillow draft + crop first (faceset's general path)": pillow_draft,
    "simplejpeg scaled decode + vips Lanczos": simplejpeg_scaled,
    "pyvips sequential, shrink-on-load, crop first": vips_sequential,
    "libjpeg-turbo window decode + Pillow LANCZOS": libjpeg_box_pillow,
    "libjpeg-turbo window decode + vips Lanczos (faceset)": faceset_fast,
    "the same, DCT-scaled down to 1x the output (not 2x)": faceset_fast_headroom_1,
}


def sharpness(image: Image.Image) -> float:
    """Variance of the Laplacian of the grey image: falls as fine detail is lost."""
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    lap = grey[1:-1, 2:] + grey[1:-1, :-2] + grey[2:, 1:-1] + grey[:-2, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(lap.var())


def encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    library.add_arguments(parser)
    parser.add_argument("--sample", type=int, default=48, help="photos timed per candidate")
    args = parser.parse_args()
    lib = library.build(args.library or library.DEFAULT_ROOT, args.photos, args.grain)
    photos = lib.photos[:: max(1, len(lib.photos) // args.sample)][: args.sample]
    files = [(p, p.path.read_bytes()) for p in photos]
    print(
        f"{len(files)} photos, 12 MP, {statistics.mean(len(d) for _, d in files) / 1e6:.1f} MB mean; one process"
    )
    print(f"libjpeg-turbo for window decodes: {'yes' if libjpeg.available() else 'no'}")
    print(f"PyTurboJPEG: {_turbojpeg_status()}")
    refs = [reference(d, p) for p, d in files]
    base = 0.0
    ref_sharpness = statistics.mean(sharpness(r) for r in refs)
    print(f"{'candidate':64s} {'ms/photo':>9s} {'x ref':>6s} {'MAD':>5s} {'sharp':>6s}")
    for name, crop in CANDIDATES.items():
        try:
            crop(files[0][1], files[0][0])
        except ImportError as e:
            print(f"{name:64s} not installed ({e.name})")
            continue
        start = time.perf_counter()
        outs = [crop(d, p) for p, d in files]
        for out in outs:
            encode(out)
        ms = (time.perf_counter() - start) / len(files) * 1000
        base = base or ms
        mad = statistics.mean(
            float(np.abs(np.asarray(o, dtype=np.int16) - np.asarray(r, dtype=np.int16)).mean())
            for o, r in zip(outs, refs, strict=True)
        )
        sharp = statistics.mean(sharpness(o) for o in outs) / ref_sharpness
        print(f"{name:64s} {ms:9.1f} {base / ms:6.1f} {mad:5.2f} {sharp:6.3f}")
    print(f"(VIPS_CONCURRENCY={os.environ.get('VIPS_CONCURRENCY', 'unset')}; faceset sets 1)")


if __name__ == "__main__":
    main()
