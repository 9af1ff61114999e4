"""Decode one box of a JPEG at a DCT scale with the system's libjpeg-turbo, and nothing more.

libjpeg-turbo can skip the rows above a box without inverse-transforming them
(``jpeg_skip_scanlines``), transform only the box's columns (``jpeg_crop_scanline``) and stop after
its last row. For a face window in a 12 MP photo that is two to four times less work than a whole
decode (``python -m bench.decoders``). Pillow, pyvips and simplejpeg bundle libjpeg-turbo but
expose none of this, and PyTurboJPEG's region decode needs libjpeg-turbo 3, which Debian does not
ship; so this module binds the system library (Debian's ``libjpeg62-turbo``) through ctypes.
Where none loads, :func:`available` is false and callers decode another way.

libjpeg reports a fatal error by calling ``error_exit``, which must not return: C callers
``longjmp`` out of it, which Python cannot do. So decodes run on a helper thread, and
``error_exit`` hands the error to the caller and then parks that thread for good. The decoder it
abandons holds a few rows of memory; after :data:`MAX_ABANDONED` such errors the module switches
itself off for the process, so a library of broken files cannot grow memory. Callers reach here
only with files whose headers Pillow has already parsed, so such errors are rare.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

MAX_ABANDONED = 8
"""Fatal libjpeg errors tolerated per process before the native path switches off."""

_JCS_GRAYSCALE, _JCS_RGB = 1, 2
_EOI = b"\xff\xd9"
_READ_AHEAD = 16  # bytes libjpeg-turbo's Huffman decoder may have taken beyond the last block
# sizeof(struct jpeg_decompress_struct) on LP64 by JPEG_LIB_VERSION: libjpeg refuses any other
# size. The fields read here all precede the ones that differ between versions.
_STRUCT_SIZES = {62: 632, 70: 640, 80: 656}
_HEAD_SIZE = 172  # offset of the first field after output_scanline


class _ErrorMgr(ctypes.Structure):
    _fields_ = (
        ("error_exit", ctypes.c_void_p),
        ("emit_message", ctypes.c_void_p),
        ("output_message", ctypes.c_void_p),
        ("format_message", ctypes.c_void_p),
        ("reset_error_mgr", ctypes.c_void_p),
        ("msg_code", ctypes.c_int),
        ("msg_parm", ctypes.c_int * 20),  # union { int i[8]; char s[80]; }
        ("trace_level", ctypes.c_int),
        ("num_warnings", ctypes.c_long),
        ("jpeg_message_table", ctypes.c_void_p),
        ("last_jpeg_message", ctypes.c_int),
        ("addon_message_table", ctypes.c_void_p),
        ("first_addon_message", ctypes.c_int),
        ("last_addon_message", ctypes.c_int),
    )


class _SourceMgr(ctypes.Structure):
    _fields_ = (
        ("next_input_byte", ctypes.c_void_p),
        ("bytes_in_buffer", ctypes.c_size_t),
        ("init_source", ctypes.c_void_p),
        ("fill_input_buffer", ctypes.c_void_p),
        ("skip_input_data", ctypes.c_void_p),
        ("resync_to_restart", ctypes.c_void_p),
        ("term_source", ctypes.c_void_p),
    )


_INT, _UINT = ctypes.c_int, ctypes.c_uint


class _Decompress(ctypes.Structure):
    """``struct jpeg_decompress_struct`` up to ``output_scanline``, then room for the rest."""

    _fields_ = (
        ("err", ctypes.POINTER(_ErrorMgr)),
        ("mem", ctypes.c_void_p),
        ("progress", ctypes.c_void_p),
        ("client_data", ctypes.c_void_p),
        ("is_decompressor", _INT),
        ("global_state", _INT),
        ("src", ctypes.POINTER(_SourceMgr)),
        ("image_width", _UINT),
        ("image_height", _UINT),
        ("num_components", _INT),
        ("jpeg_color_space", _INT),
        ("out_color_space", _INT),
        ("scale_num", _UINT),
        ("scale_denom", _UINT),
        ("output_gamma", ctypes.c_double),
        ("buffered_image", _INT),
        ("raw_data_out", _INT),
        ("dct_method", _INT),
        ("do_fancy_upsampling", _INT),
        ("do_block_smoothing", _INT),
        ("quantize_colors", _INT),
        ("dither_mode", _INT),
        ("two_pass_quantize", _INT),
        ("desired_number_of_colors", _INT),
        ("enable_1pass_quant", _INT),
        ("enable_external_quant", _INT),
        ("enable_2pass_quant", _INT),
        ("output_width", _UINT),
        ("output_height", _UINT),
        ("out_color_components", _INT),
        ("output_components", _INT),
        ("rec_outbuf_height", _INT),
        ("actual_number_of_colors", _INT),
        ("colormap", ctypes.c_void_p),
        ("output_scanline", _UINT),
        ("_rest", ctypes.c_ubyte * (max(_STRUCT_SIZES.values()) - _HEAD_SIZE)),
    )


class JpegError(OSError):
    """libjpeg could not decode the file."""


_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_FORMAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
_local = threading.local()


def _on_error(cinfo: int | None) -> None:
    """libjpeg's error_exit: hand the message to the caller, then never return (see above)."""
    message = "libjpeg error"
    try:
        err = ctypes.cast(ctypes.c_void_p(cinfo), ctypes.POINTER(ctypes.POINTER(_ErrorMgr)))[0][0]
        buffer = ctypes.create_string_buffer(200)  # JMSG_LENGTH_MAX
        _FORMAT(err.format_message)(cinfo, buffer)
        message = buffer.value.decode("ascii", "replace")
    except Exception:  # an exception here would return into libjpeg: keep the generic message
        log.debug("cannot format a libjpeg error", exc_info=True)
    reply: queue.SimpleQueue[tuple[bool, Any]] = _local.reply
    _abandon_runner()
    reply.put((False, JpegError(f"cannot decode image: {message}")))
    threading.Event().wait()


def _silent(cinfo: int | None) -> None:
    """libjpeg's output_message: warnings about corrupt data are not printed (Pillow's choice)."""


_ERROR_EXIT = _CALLBACK(_on_error)
_OUTPUT_MESSAGE = _CALLBACK(_silent)


class _Library:
    def __init__(self, lib: ctypes.CDLL, version: int) -> None:
        self.name = str(lib._name)
        self.version = version
        self.struct_size = _STRUCT_SIZES[version]
        d = ctypes.POINTER(_Decompress)
        uint_p = ctypes.POINTER(_UINT)
        self.std_error = _fn(lib.jpeg_std_error, ctypes.POINTER(_ErrorMgr), [ctypes.c_void_p])
        self.create = _fn(lib.jpeg_CreateDecompress, None, [d, _INT, ctypes.c_size_t])
        self.mem_src = _fn(lib.jpeg_mem_src, None, [d, ctypes.c_char_p, ctypes.c_ulong])
        self.read_header = _fn(lib.jpeg_read_header, _INT, [d, _INT])
        self.start = _fn(lib.jpeg_start_decompress, _INT, [d])
        self.crop_scanline = _fn(lib.jpeg_crop_scanline, None, [d, uint_p, uint_p])
        self.skip_scanlines = _fn(lib.jpeg_skip_scanlines, _UINT, [d, _UINT])
        # The row array goes in as a plain address: a window takes hundreds of calls.
        self.read_scanlines = _fn(lib.jpeg_read_scanlines, _UINT, [d, ctypes.c_void_p, _UINT])
        self.destroy = _fn(lib.jpeg_destroy_decompress, None, [d])


def _fn(fn: Any, restype: Any, argtypes: list[Any]) -> Any:
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


def _load() -> _Library | None:
    """Return the system libjpeg-turbo, or None where there is none this module can drive."""
    if sys.platform == "win32" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None  # the struct layout above is the LP64 one; Windows' boolean is a byte
    for name in _candidates():
        match = re.search(r"libjpeg\.(?:so\.)?(\d+)", os.path.basename(name))
        version = {"62": 62, "7": 70, "8": 80}.get(match.group(1)) if match else None
        if version is None:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        # jpeg_crop_scanline and jpeg_skip_scanlines are libjpeg-turbo's (1.5 and later).
        if hasattr(lib, "jpeg_crop_scanline") and hasattr(lib, "jpeg_skip_scanlines"):
            return _Library(lib, version)
    return None


def _candidates() -> Iterator[str]:
    yield from ("libjpeg.so.62", "libjpeg.so.8", "libjpeg.so.7")
    # Last, as it runs ldconfig: a hundredth of a second in every worker's start.
    found = ctypes.util.find_library("jpeg")
    if found:
        yield found


class _Runner:
    """A helper thread that runs decodes, so that a fatal libjpeg error can park it."""

    def __init__(self) -> None:
        self.requests: queue.SimpleQueue[
            tuple[Callable[[], Any], queue.SimpleQueue[tuple[bool, Any]]]
        ] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="faceset-libjpeg", daemon=True).start()

    def _serve(self) -> None:
        while True:
            fn, reply = self.requests.get()
            _local.reply = reply
            try:
                result = (True, fn())
            except BaseException as e:  # handed to the caller, which raises it
                result = (False, e)
            reply.put(result)

    def call(self, fn: Callable[[], Any]) -> Any:
        reply: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        self.requests.put((fn, reply))
        ok, value = reply.get()
        if not ok:
            raise value
        return value


_lib = _load()
_lock = threading.Lock()
_runner: _Runner | None = None
_abandoned = 0


def _abandon_runner() -> None:
    global _runner, _abandoned
    _runner = None
    _abandoned += 1
    if _abandoned == MAX_ABANDONED:
        log.warning(
            "libjpeg failed on %d files; decoding JPEGs the slower way from now on", _abandoned
        )


def _forget_runner() -> None:
    global _runner
    _runner = None  # a forked child has no helper thread, only the parent's reference to it


os.register_at_fork(after_in_child=_forget_runner)


def available() -> bool:
    """Return whether :func:`read_box` can be used in this process."""
    return _lib is not None and _abandoned < MAX_ABANDONED


def describe() -> str:
    """Return which libjpeg-turbo the fast path uses, for bug reports (``faceset doctor``)."""
    if _lib is None:
        return "not found: JPEGs decode through Pillow (apt install libjpeg62-turbo)"
    path = _lib.name
    if sys.platform == "linux":  # the file really mapped, with the full version in its name
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                mapped = line.split()[-1]
                if os.path.basename(mapped).startswith(os.path.basename(_lib.name)):
                    path = mapped
                    break
    return f"{path} (ABI {_lib.version})"


class DamagedData(OSError):
    """libjpeg decoded the box but warned of corrupt data on the way: what it made of the damage
    is in ``rows`` (and ``start``), for a caller that accepts a damaged crop."""

    def __init__(self, warnings: int, rows: npt.NDArray[np.uint8], start: int) -> None:
        super().__init__(
            f"corrupt JPEG data: libjpeg warned {warnings} time{'s' if warnings > 1 else ''}"
            " (pass --allow-damaged to crop such files anyway)"
        )
        self.warnings, self.rows, self.start = warnings, rows, start


def read_box(
    data: bytes, box: tuple[int, int, int, int], scale: int, gray: bool
) -> tuple[npt.NDArray[np.uint8], int]:
    """Return the rows of ``box`` of the JPEG in ``data`` decoded at 1/``scale``, and where
    the box's columns start in them.

    ``box`` is ``left, top, right, bottom`` in pixels of the image scaled by 1/``scale`` (1, 2, 4
    or 8), stored orientation. libjpeg decodes whole blocks, so the rows, one contiguous array of
    shape (height, width, 3), RGB, or (height, width, 1) when ``gray``, may reach a few pixels
    left and right of the box: the box is ``rows[:, start : start + right - left]``. Raises
    OSError if the file is cut short before the end of its image data, or if libjpeg cannot
    decode it; DamagedData (with the rows) if libjpeg warned of corrupt data while decoding.
    """
    global _runner
    if _lib is None:
        raise RuntimeError("no libjpeg-turbo in this process; check available() first")
    lib = _lib
    with _lock:
        if _runner is None:
            _runner = _Runner()
        return _runner.call(lambda: _decode(lib, data, box, scale, gray))  # type: ignore[no-any-return]


def _decode(
    lib: _Library, data: bytes, box: tuple[int, int, int, int], scale: int, gray: bool
) -> tuple[npt.NDArray[np.uint8], int]:
    left, top, right, bottom = box
    err = _ErrorMgr()
    cinfo = _Decompress()
    lib.std_error(ctypes.byref(err))
    err.error_exit = ctypes.cast(_ERROR_EXIT, ctypes.c_void_p).value
    err.output_message = ctypes.cast(_OUTPUT_MESSAGE, ctypes.c_void_p).value
    cinfo.err = ctypes.pointer(err)
    ref = ctypes.byref(cinfo)
    lib.create(ref, lib.version, lib.struct_size)
    try:
        lib.mem_src(ref, data, len(data))
        lib.read_header(ref, 1)
        cinfo.out_color_space = _JCS_GRAYSCALE if gray else _JCS_RGB
        cinfo.scale_num, cinfo.scale_denom = 1, scale
        lib.start(ref)
        if not (
            0 <= left < right <= cinfo.output_width and 0 <= top < bottom <= cinfo.output_height
        ):
            raise ValueError(
                f"box {box} is outside the {cinfo.output_width}x{cinfo.output_height} image"
            )
        # libjpeg widens the columns to whole blocks: decode those, keep the box.
        x, width = _UINT(left), _UINT(right - left)
        lib.crop_scanline(ref, ctypes.byref(x), ctypes.byref(width))
        if top and lib.skip_scanlines(ref, top) != top:
            raise OSError("image file is truncated")
        channels = cinfo.output_components
        rows = np.empty((bottom - top, width.value * channels), dtype=np.uint8)
        pointers = (ctypes.c_void_p * len(rows))(
            *range(rows.ctypes.data, rows.ctypes.data + rows.nbytes, rows.strides[0])
        )
        at, size = ctypes.addressof(pointers), ctypes.sizeof(ctypes.c_void_p)
        done, read_scanlines = 0, lib.read_scanlines
        while done < len(rows):
            read = read_scanlines(ref, at + done * size, len(rows) - done)
            if read == 0:
                raise OSError("image file is truncated")
            done += read
        _check_complete(data, cinfo)
    finally:
        lib.destroy(ref)
    shaped = rows.reshape(len(rows), width.value, channels)
    # libjpeg counts its warnings ("Corrupt JPEG data: premature end of data segment", bad
    # Huffman codes) and decodes on: grey blocks or smeared rows in the crop.
    if err.num_warnings:
        raise DamagedData(int(err.num_warnings), shaped, left - x.value)
    return shaped, left - x.value


def _check_complete(data: bytes, cinfo: _Decompress) -> None:
    """Raise OSError if ``data`` ends before its image data does, as Pillow would.

    Decoding stopped at the box's last row, so libjpeg has not seen the end of the file. Entropy
    coded data cannot hold the byte pair FF D9, so an EOI marker after the read position means
    the image data is complete; a file cut short has none there. The search starts a little
    before the position: libjpeg reads a few bytes ahead, and past the EOI when the box reaches
    the last row.
    """
    base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
    position = (cinfo.src.contents.next_input_byte or 0) - base
    # Past the data, libjpeg reads a fake EOI of its own: the file ended inside the box.
    if not 0 <= position <= len(data) or data.rfind(_EOI, max(position - _READ_AHEAD, 0)) < 0:
        raise OSError("image file is truncated")
