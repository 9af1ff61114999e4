"""The fast JPEG path (libjpeg-turbo window decode, libvips resize) against a full decode.

The reference is what any tool does: decode everything, apply EXIF orientation, crop, LANCZOS.
Bound: mean absolute difference under 1.0 of 255 levels per channel (measured 0.14-0.55), same
size.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from faceset.crop import CropJob, CropSettings, decode, geometry, libjpeg, render
from faceset.demo.images import encode
from faceset.model import Box, Face, RelBox

MAD_BOUND = 1.0
UPRIGHT_SIZE = (1601, 1203)  # odd sizes: partial blocks at the right and bottom edges


@pytest.fixture(autouse=True)
def _needs_libjpeg() -> None:
    if not libjpeg.available():
        if os.environ.get("CI") == "true":
            pytest.fail("the system libjpeg-turbo (libjpeg62-turbo) is required under CI=true")
        pytest.skip("no system libjpeg-turbo: the fast path is off here")


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Record every window the fast path decodes, so a test knows it was taken."""
    calls: list[tuple[int, ...]] = []
    real: Callable[..., Any] = libjpeg.read_box

    def spy(data: bytes, box: tuple[int, int, int, int], scale: int, gray: bool) -> Any:
        calls.append((*box, scale))
        return real(data, box, scale, gray)

    monkeypatch.setattr(libjpeg, "read_box", spy)
    return calls


def photo(seed: int = 0, size: tuple[int, int] = UPRIGHT_SIZE) -> Image.Image:
    """Return an upright photo: smooth texture, fine noise, and four sharp-edged colour blocks."""
    rng = np.random.default_rng(seed)
    width, height = size
    coarse = rng.integers(40, 200, size=(height // 24 + 1, width // 24 + 1, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), np.int16)
    pixels = np.clip(base + rng.integers(-12, 13, size=base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    for colour, box in (
        ((230, 30, 30), (601, 301, 801, 501)),
        ((30, 200, 30), (801, 301, 1001, 501)),
        ((30, 30, 230), (601, 501, 801, 701)),
        ((240, 240, 240), (801, 501, 1001, 701)),
    ):
        image.paste(colour, box)
    return image


def reference(data: bytes, window: Box, size: int) -> Image.Image:
    full = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    box = (window.left, window.top, window.right, window.bottom)
    return full.crop(box).resize((size, size), Image.Resampling.LANCZOS)


def fast(data: bytes, window: Box, size: int) -> Image.Image:
    opened = decode.open_photo(data)
    width, height = geometry.oriented_size(opened.width, opened.height, opened.orientation)
    stored = geometry.to_stored(window, width, height, opened.orientation)
    return decode.upright(decode.read_window(opened, stored, size), opened.orientation)


def mad(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean())


def oriented_window(left: int, top: int, side: int) -> Box:
    return Box(left, top, left + side, top + side)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(
    ("window", "size", "scale"),
    [
        # whole scale; at 1/2 and 1/4 with the window starting between scaled pixels; a side
        # that is no whole number of scaled pixels falls back to a whole-scale decode
        (oriented_window(301, 101, 1001), 384, 1),
        (oriented_window(301, 101, 1002), 200, 2),
        (oriented_window(299, 97, 1100), 128, 4),
        (oriented_window(300, 100, 1001), 200, 1),
    ],
)
def test_fast_crop_matches_the_full_decode(
    orientation: int, window: Box, size: int, scale: int, fast_calls: list[tuple[int, ...]]
) -> None:
    data = encode(photo(orientation), "JPEG", orientation)

    out = fast(data, window, size)

    assert [call[-1] for call in fast_calls] == [scale]
    assert out.size == (size, size)
    assert out.mode == "RGB"
    assert mad(out, reference(data, window, size)) < MAD_BOUND


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_odd_sized_window_is_framed_on_the_grid_of_the_scaled_decode(
    orientation: int, fast_calls: list[tuple[int, ...]], tmp_path: Path
) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(encode(photo(orientation), "JPEG", orientation))
    width, height = UPRIGHT_SIZE
    # A face 402 px across frames a 1005 px window: over four times the output, so read at 1/2,
    # which an odd side would spoil (half a scaled pixel left over) unless framed on the grid.
    box = RelBox(600 / width, 300 / height, 402 / width, 402 / height)
    face = Face("m", "f", "p", "s", "Jane", "/", "photo.jpg", box)
    job = CropJob(face, source, tmp_path / "out.jpg", "out.jpg", CropSettings(size=240))

    framed = render.frame_face(job)

    assert isinstance(framed, render.Framed)
    out = framed.read(240)
    stored = geometry.to_stored(framed.window, width, height, orientation)
    assert [call[-1] for call in fast_calls] == [2]
    assert all(edge % 2 == 0 for edge in (stored.left, stored.top, stored.right, stored.bottom))
    assert 1003 <= framed.window.width <= 1005
    assert mad(out, reference(source.read_bytes(), framed.window, 240)) < MAD_BOUND


def test_window_at_the_bottom_right_corner_matches(fast_calls: list[tuple[int, ...]]) -> None:
    width, height = UPRIGHT_SIZE
    window = oriented_window(width - 1100, height - 1100, 1100)
    data = encode(photo(3), "JPEG", 6)

    assert mad(fast(data, window, 300), reference(data, window, 300)) < MAD_BOUND
    assert fast_calls


def test_grayscale_jpeg_comes_out_rgb(fast_calls: list[tuple[int, ...]]) -> None:
    data = encode(photo(4).convert("L").convert("RGB"), "JPEG", 8)
    gray = Image.open(io.BytesIO(data))
    buffer = io.BytesIO()
    gray.convert("L").save(buffer, "JPEG", quality=92, exif=gray.getexif().tobytes())
    data = buffer.getvalue()
    window = oriented_window(150, 250, 900)

    out = fast(data, window, 300)

    assert out.mode == "RGB"
    assert mad(out, reference(data, window, 300)) < MAD_BOUND
    assert fast_calls


def test_file_cut_short_below_the_window_is_reported_as_truncated() -> None:
    data = encode(photo(5), "JPEG", 1)
    cut = data[: len(data) * 3 // 4]  # the window sits in the top half: its rows are all there

    with pytest.raises(OSError, match="truncated"):
        fast(cut, oriented_window(100, 50, 700), 256)


def test_broken_huffman_table_fails_cleanly_and_decoding_goes_on() -> None:
    data = encode(photo(6), "JPEG", 1)
    at = data.index(b"\xff\xc4")  # DHT: make every code length count impossible
    broken = data[: at + 5] + b"\xff" * 16 + data[at + 21 :]
    window = oriented_window(100, 50, 700)

    # The system libjpeg gives up; Pillow's own decoder then says what is wrong.
    with pytest.raises(OSError, match="broken data stream"):
        fast(broken, window, 256)
    assert mad(fast(data, window, 256), reference(data, window, 256)) < MAD_BOUND


def test_progressive_jpeg_takes_the_general_path(fast_calls: list[tuple[int, ...]]) -> None:
    upright = photo(7)
    buffer = io.BytesIO()
    upright.save(buffer, "JPEG", quality=92, progressive=True)
    window = oriented_window(301, 101, 1001)

    out = fast(buffer.getvalue(), window, 256)

    assert fast_calls == []
    assert mad(out, reference(buffer.getvalue(), window, 256)) < MAD_BOUND


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def adobe_rgb_like_profile() -> bytes:
    """Return an ICC v2 matrix/TRC profile with Adobe RGB (1998) primaries and gamma 2.2."""
    text = b"Adobe RGB-like test profile\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * (4 + 4 + 2 + 1 + 67)
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563) + b"\0\0"  # 563/256 = 2.2
    tags = [
        (b"desc", desc),
        (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
        # The primaries adapted to the D50 connection space (Bradford), as Adobe's profile has.
        (b"rXYZ", _xyz(0.6097, 0.3111, 0.0195)),
        (b"gXYZ", _xyz(0.2053, 0.6257, 0.0609)),
        (b"bXYZ", _xyz(0.1492, 0.0632, 0.7446)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0public domain\0\0\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, payload in tags:
        table += signature + struct.pack(">II", offset + len(body), len(payload))
        body += payload + b"\0" * (-len(payload) % 4)
    size = offset + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"\0" * 4, 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    header += struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24
    header += struct.pack(">I", 0) + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


def test_adobe_rgb_photo_is_converted_to_srgb(fast_calls: list[tuple[int, ...]]) -> None:
    icc = adobe_rgb_like_profile()
    upright = photo(8)
    exif = Image.Exif()
    exif[decode.EXIF_ORIENTATION] = 6
    buffer = io.BytesIO()
    decode.upright(upright, 8).save(
        buffer, "JPEG", quality=92, icc_profile=icc, exif=exif.tobytes()
    )  # stored turned back by 90 degrees, so that orientation 6 shows it upright
    data = buffer.getvalue()
    window = oriented_window(400, 200, 900)

    out = fast(data, window, 256)

    adobe = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    srgb = ImageCms.createProfile("sRGB")
    as_is = reference(data, window, 256)
    expected = ImageCms.profileToProfile(as_is, adobe, srgb, outputMode="RGB")
    assert expected is not None
    assert fast_calls
    assert mad(out, expected) < MAD_BOUND
    assert mad(out, as_is) > 3  # the profile was applied, not dropped


def test_sixteen_bit_png_is_scaled_to_eight_bits() -> None:
    ramp = np.linspace(0, 65535, 1200, dtype=np.float64)
    values = (np.outer(np.linspace(0.2, 1.0, 900), ramp)).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    window = oriented_window(500, 200, 700)  # reaches the brightest corner

    out = fast(data, window, 256)

    eight_bit = Image.fromarray(np.rint(values / 257).astype(np.uint8)).convert("RGB")
    box = (window.left, window.top, window.right, window.bottom)
    expected = eight_bit.crop(box).resize((256, 256), Image.Resampling.LANCZOS)
    assert out.mode == "RGB"
    assert mad(out, expected) < MAD_BOUND
    assert np.asarray(out).max() > 200  # scaled from 16 bits, not clipped or cut to the high byte
