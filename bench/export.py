"""``faceset export`` against the naive pipeline and the JPEG decode floor, in the same run.

Run ``python -m bench.export`` from the repository root. It builds (once) a PhotoPrism library of
12 MP JPEGs in all eight EXIF orientations (:mod:`bench.library`), then times, on the same files:

- naive: one ImageMagick ``convert`` per photo, one after another: auto-orient, crop the same
  head-and-shoulders window by percentages (``-set page``/``-crop``), resize to 512, write;
- floor: libjpeg-turbo's ``djpeg`` decoding every photo whole, one process per core at a time;
- faceset: ``faceset export --size 512``, the real command, into a fresh folder;

and prints photos per second, the ratios, and the peak memory of faceset's processes. The floor
and faceset runs are repeated (``--repeat``, default 3) and the fastest of each is kept, so a
moment of noise on a shared machine does not decide the ratio; the naive run is long enough as
it is and runs once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import library
from faceset.crop.pool import default_workers

INSTALL = "apt-get install imagemagick libjpeg-turbo-progs"


def find_imagemagick() -> list[str] | None:
    """Return the command of a real ImageMagick ``convert``, never a stand-in of the same name.

    Some machines put a script named ``convert`` first on PATH that only imitates a corner of
    ImageMagick; a real binary answers ``-version`` with "Version: ImageMagick".
    """
    candidates: list[list[str]] = []
    if magick := shutil.which("magick"):
        candidates.append([magick, "convert"])
    for folder in ["/usr/bin", *os.environ.get("PATH", "").split(os.pathsep)]:
        path = Path(folder) / "convert"
        if path.is_file() and [str(path)] not in candidates:
            candidates.append([str(path)])
    for command in candidates:
        binary = Path(command[0]).resolve()
        try:
            if binary.read_bytes()[:2] == b"#!":
                continue  # a script, not ImageMagick
            version = subprocess.run(
                [*command, "-version"], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if version.startswith("Version: ImageMagick"):
            return command
    return None


def naive(convert: list[str], photos: list[library.BenchPhoto], out: Path) -> float:
    """Return seconds for one ``convert`` per photo, sequential."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i, photo in enumerate(photos):
        width, height = photo.size
        w = photo.window
        x, y = w.left / width, w.top / height
        pw, ph = 100 * w.width / width, 100 * w.height / height
        subprocess.run(
            [
                *convert, str(photo.path), "-auto-orient",
                "-set", "page", f"-%[fx:w*{x:.6f}]-%[fx:h*{y:.6f}]",
                "-crop", f"{pw:.4f}%x{ph:.4f}%+0+0", "+repage",
                "-resize", "512x512!", "-quality", "95", str(out / f"{i}.jpg"),
            ],
            check=True,
        )  # fmt: skip
    return time.perf_counter() - start


def floor(djpeg: str, photos: list[library.BenchPhoto], workers: int) -> float:
    """Return seconds for ``djpeg`` to decode every photo whole, ``workers`` at a time."""

    def run(photo: library.BenchPhoto) -> None:
        subprocess.run([djpeg, "-outfile", os.devnull, str(photo.path)], check=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, photos))
    return time.perf_counter() - start


def faceset_export(
    lib: library.BenchLibrary, out: Path, layout: str = "none"
) -> tuple[float, dict[str, int]]:
    """Return seconds for ``faceset export --size 512`` and the peak RSS (KiB) of its processes."""
    command = [
        sys.executable, "-m", "faceset", "export", "--db", lib.db_url,
        "--originals", str(lib.originals), "--person", library.PERSON,
        # The naive pipeline only crops: so does the compared run (--layout none); the trainer
        # folders are timed in a second run.
        "--out", str(out), "--size", "512", "--layout", layout, "-q",
    ]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command)
    peaks = _watch(process)
    if process.wait() != 0:
        raise SystemExit(f"faceset export failed with status {process.returncode}")
    return time.perf_counter() - start, peaks


def _watch(process: subprocess.Popen[bytes]) -> dict[str, int]:
    """Return the peak RSS (VmHWM, KiB) of ``process`` and each process under it, by role."""
    peaks: dict[int, tuple[str, int]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            for pid in _descendants(process.pid):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if not cmdline:
                    continue  # exited between the listing and the read: a zombie has no command
                hwm = next(
                    (
                        int(line.split()[1])
                        for line in status.splitlines()
                        if line.startswith("VmHWM:")
                    ),
                    0,
                )
                role = _role(pid, process.pid, cmdline)
                peaks[pid] = (role, max(hwm, peaks.get(pid, ("", 0))[1]))

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    process.wait()
    done.set()
    watcher.join()
    by_role: dict[str, int] = {}
    for role, hwm in peaks.values():
        by_role[role] = max(by_role.get(role, 0), hwm)
    return by_role


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _role(pid: int, root: int, cmdline: bytes) -> str:
    if pid == root:
        return "main process"
    if b"forkserver" in cmdline and b"main(" in cmdline:
        # The forkserver itself and the workers it forks share its command line; the workers are
        # the ones that decode, and the larger.
        return "worker (peak of any)"
    if b"resource_tracker" in cmdline:
        return "multiprocessing resource tracker"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    library.add_arguments(parser)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of floor and faceset; best kept"
    )
    args = parser.parse_args()
    convert, djpeg = find_imagemagick(), shutil.which("djpeg")
    if convert is None or djpeg is None:
        missing = [n for n, found in (("ImageMagick", convert), ("djpeg", djpeg)) if not found]
        print(f"missing {' and '.join(missing)}: {INSTALL}", file=sys.stderr)
        raise SystemExit(2)
    workers = default_workers()
    root = args.library or library.DEFAULT_ROOT
    print(f"library: {root} (built once, reused)", flush=True)
    lib = library.build(root, args.photos, args.grain, workers)
    n = len(lib.photos)
    size_mb = sum(p.path.stat().st_size for p in lib.photos) / n / 1e6
    print(f"{n} photos, 12 MP, {size_mb:.1f} MB mean, orientations 1-8; {workers} cores")
    print(f"naive: {' '.join(convert)} per photo, sequential, with -resize 512x512")
    with tempfile.TemporaryDirectory() as tmp:
        t_naive = naive(convert, lib.photos, Path(tmp) / "naive")
        t_floor = t_faceset = t_layouts = float("inf")
        peaks: dict[str, int] = {}
        for i in range(max(1, args.repeat)):
            # Interleaved, so a slow spell of the machine falls on both alike.
            t_floor = min(t_floor, floor(djpeg, lib.photos, workers))
            seconds, run_peaks = faceset_export(lib, Path(tmp) / f"faceset{i}")
            t_faceset = min(t_faceset, seconds)
            peaks = {role: max(kib, peaks.get(role, 0)) for role, kib in run_peaks.items()}
        written = len(list((Path(tmp) / "faceset0" / "faces").glob("*.jpg")))
        for i in range(max(1, args.repeat)):
            t_layouts = min(t_layouts, faceset_export(lib, Path(tmp) / f"layouts{i}", "all")[0])
    if written != n:
        print(f"warning: faceset wrote {written} images for {n} photos", file=sys.stderr)
    rows = [
        ("naive (ImageMagick convert per photo)", t_naive),
        (f"floor (djpeg full decode, {workers} at a time)", t_floor),
        ("faceset export --size 512", t_faceset),
    ]
    for name, seconds in rows:
        print(f"{name:48s} {seconds:7.2f} s {n / seconds:8.1f} photos/s")
    print(
        f"faceset / naive: {t_naive / t_faceset:.1f}x   faceset / floor: {t_floor / t_faceset:.2f}x"
    )
    print(
        f"{'faceset export --size 512 with all trainer layouts':48s} {t_layouts:7.2f} s {n / t_layouts:8.1f} photos/s"
    )
    for role, kib in sorted(peaks.items()):
        print(f"peak RSS, {role}: {kib / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
