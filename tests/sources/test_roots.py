"""File names from a library resolve inside their root, or are refused, whatever links lie between."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceset.sources.roots import RootResolver, UnsafePath


@pytest.fixture
def root(tmp_path: Path) -> Path:
    originals = tmp_path / "originals"
    (originals / "2024" / "06").mkdir(parents=True)
    (originals / "2024" / "06" / "a.jpg").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    return originals


def test_plain_names_resolve_under_the_root_even_when_the_file_is_missing(root: Path) -> None:
    resolver = RootResolver()
    assert resolver.resolve(root, "2024/06/a.jpg") == root / "2024" / "06" / "a.jpg"
    assert resolver.resolve(root, "./2024//06/a.jpg") == root / "2024" / "06" / "a.jpg"
    assert resolver.resolve(root, "2024/07/gone.jpg") == root / "2024" / "07" / "gone.jpg"


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../secret.jpg", "2024/../../secret.jpg"])
def test_names_that_are_not_inside_the_root_are_refused(root: Path, name: str) -> None:
    with pytest.raises(UnsafePath, match="not a plain path"):
        RootResolver().resolve(root, name)


def test_a_file_link_leading_out_is_refused_and_one_staying_in_is_not(root: Path) -> None:
    (root / "2024" / "06" / "out.jpg").symlink_to(root.parent / "secret.jpg")
    (root / "2024" / "06" / "in.jpg").symlink_to(root / "2024" / "06" / "a.jpg")
    resolver = RootResolver()

    with pytest.raises(UnsafePath, match="through a symlink"):
        resolver.resolve(root, "2024/06/out.jpg")
    assert resolver.resolve(root, "2024/06/in.jpg") == root / "2024" / "06" / "in.jpg"


def test_folder_links_are_judged_by_where_they_lead(root: Path) -> None:
    (root / "away").symlink_to(root.parent)
    (root / "june").symlink_to(root / "2024" / "06")
    resolver = RootResolver()

    with pytest.raises(UnsafePath, match="through a symlink"):
        resolver.resolve(root, "away/secret.jpg")
    # Asked again, the cached folder still refuses.
    with pytest.raises(UnsafePath):
        resolver.resolve(root, "away/other.jpg")
    assert resolver.resolve(root, "june/a.jpg") == root / "june" / "a.jpg"


def test_a_root_that_is_itself_a_link_is_followed(tmp_path: Path, root: Path) -> None:
    (tmp_path / "library").symlink_to(root)

    path = RootResolver().resolve(tmp_path / "library", "2024/06/a.jpg")

    assert path.read_bytes() == b"x"
