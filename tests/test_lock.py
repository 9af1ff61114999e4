"""constraints.txt, the tested set of versions, agrees with pyproject.toml and was installed.

The README's commands and CI install with ``-c constraints.txt``; this fails CI when someone
changes a range in pyproject.toml without refreshing the lock (``scripts/lock``), and, under
CI=true, when the venv CI built holds anything but the locked versions.
"""

from __future__ import annotations

import importlib.metadata
import os
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parent.parent
LOCK = ROOT / "constraints.txt"


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt pins exact versions only: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += [line for line in extra if not line.startswith("faceset[")]
    return [Requirement(line) for line in lines]


def test_every_requirement_of_pyproject_is_locked_within_its_range() -> None:
    pins = locked()
    disagree = []
    for requirement in declared():
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None or not requirement.specifier.contains(pin, prereleases=True):
            disagree.append(f"{requirement} (locked: {pin})")
    assert not disagree, "constraints.txt is stale, run scripts/lock: " + ", ".join(disagree)


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="a developer's venv may differ")
def test_ci_installed_exactly_the_locked_versions() -> None:
    different = []
    for name, version in locked().items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a platform-specific pin this machine does not need
        if installed.split("+")[0] != version:
            different.append(f"{name} {installed} (locked {version})")
    assert not different, "the venv was not built from constraints.txt: " + ", ".join(different)
