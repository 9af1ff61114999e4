"""The software faceset runs on: what is installed, checked against faceset's own requirements.

The commands that load models (train, headshots, eval, run) call :func:`require` before torch
is imported, so a user's own mix of versions is one line naming the package and the version to
install, not a traceback a minute later. ``faceset doctor`` prints :func:`report` for bug reports.
The ranges come from faceset's installed metadata (``pyproject.toml``), so there is one list.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from faceset import __version__
from faceset.errors import FacesetError

TRAIN_STACK = ("torch", "diffusers", "transformers", "peft", "accelerate", "safetensors")
"""The ``train`` extra: every command that loads a model needs all of it."""
REPORTED = (*TRAIN_STACK, "pillow", "pillow-heif", "pyvips", "numpy", "sqlalchemy")


class StackMismatch(FacesetError):
    """A package faceset needs is missing or of a version outside faceset's range."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One package that does not meet faceset's requirement."""

    requirement: Requirement
    installed: str | None  # None: not installed

    def describe(self) -> str:
        if self.installed is None:
            return f"{self.requirement.name} is not installed"
        return f"{self.requirement.name} {self.installed} is installed, faceset needs {self.requirement}"


def installed_version(name: str) -> str | None:
    """Return the installed version of distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirements(extra: str) -> list[Requirement]:
    """Return faceset's requirements for ``extra`` (its own list only), as installed.

    Empty when faceset runs from a source tree that was never installed: nothing to check.
    """
    try:
        declared = importlib.metadata.requires("faceset") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    wanted = []
    for line in declared:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is not None and marker.evaluate({"extra": extra}) and "extra" in str(marker):
            wanted.append(requirement)
    return wanted


def problems(extra: str, names: tuple[str, ...]) -> list[Problem]:
    """Return what is wrong with packages ``names`` against faceset's ``extra`` requirements."""
    ranges = {canonicalize_name(r.name): r for r in requirements(extra)}
    found = []
    for name in names:
        requirement = ranges.get(canonicalize_name(name), Requirement(name))
        version = installed_version(name)
        if not _importable(name):
            found.append(Problem(requirement, None))
        elif version is not None and not requirement.specifier.contains(version, prereleases=True):
            # (a package importable without distribution metadata, a source checkout on
            # PYTHONPATH, is taken as it is)
            found.append(Problem(requirement, version))
    return found


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # sys.modules[name] is None: deliberately blocked
        return False


def require(command: str) -> None:
    """Raise StackMismatch, in one line naming what to install, unless the training stack is
    installed in versions faceset supports. ``command`` ("faceset headshots") says who needs it.
    """
    found = problems("train", TRAIN_STACK)
    missing = [p.requirement.name for p in found if p.installed is None]
    if missing:
        raise StackMismatch(
            f"{command} needs the training extra ({', '.join(missing)} not installed):"
            " pip install 'faceset[train]'"
        )
    if found:
        fix = " ".join(f"'{p.requirement.name}{p.requirement.specifier}'" for p in found)
        raise StackMismatch(
            f"{command}: {'; '.join(p.describe() for p in found)}: pip install {fix}"
        )


def report() -> list[tuple[str, str]]:
    """Return (name, version and detail) of everything a bug report should carry.

    Imports torch and pyvips when installed (a few seconds), never fails.
    """
    rows = [
        ("faceset", __version__),
        ("python", f"{platform.python_version()} ({sys.platform}, {platform.machine()})"),
    ]
    for name in REPORTED:
        version = installed_version(name) or "not installed"
        if name == "torch" and version != "not installed":
            version = f"{version} ({_torch_device()})"
        if name == "pyvips" and version != "not installed":
            version = f"{version} (libvips {_libvips()})"
        rows.append((name, version))
    from faceset.crop import libjpeg

    rows.append(("libjpeg-turbo", libjpeg.describe()))
    return rows


def _torch_device() -> str:
    try:
        import torch
    except Exception as e:  # a broken install is what the report is for
        return f"fails to import: {str(e).splitlines()[0]}"
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return (
            f"CUDA {torch.version.cuda}, {props.name}, {props.total_memory / 2**30:.0f} GiB,"
            f" {torch.cuda.device_count()} GPU(s)"
        )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "Apple MPS"
    return "CPU only: no CUDA device"


def _libvips() -> str:
    try:
        import pyvips  # type: ignore[import-untyped]

        return ".".join(str(pyvips.version(i)) for i in range(3))
    except Exception as e:  # a broken install is what the report is for
        return f"fails to load: {str(e).splitlines()[0]}"
