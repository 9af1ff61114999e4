"""Other libraries from the command line, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from faceset.cli import app
from sources.library_spec import mwg_stored_packet, photo


def test_export_from_a_folder_of_xmp_tagged_photos(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for o in (1, 6, 8):
        p = photo(f"o{o}.jpg", o, (1600, 1200), (200, 300, 500, 600), seed=o)
        (folder / p.name).write_bytes(p.data)
        (folder / f"{p.name}.xmp").write_bytes(mwg_stored_packet(p))
    runner = CliRunner()

    people = runner.invoke(app, ["people", "--source", "xmp", "--originals", str(folder), "--json"])
    export = runner.invoke(app, [
        "export", "--source", "xmp", "--originals", str(folder), "-p", "jane doe",
        "--out", str(tmp_path / "out"), "--size", "256",
    ])  # fmt: skip

    assert people.exit_code == 0, people.output
    assert [json.loads(line)["faces"] for line in people.stdout.splitlines()] == [3]
    assert export.exit_code == 0, export.output
    assert len(list((tmp_path / "out" / "faces").glob("*.jpg"))) == 3


def test_api_source_without_a_url_says_what_to_pass(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["people", "--source", "immich"], env={"IMMICH_INSTANCE_URL": ""}
    )

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert result.stderr.strip().count("\n") == 0
    assert "--url" in result.stderr
