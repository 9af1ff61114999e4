"""Immich over its REST API, against a local server shaped like Immich's."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from faceset import config, pipeline
from faceset.demo.images import BOTTOM_LEFT, BOTTOM_RIGHT, TOP_LEFT, TOP_RIGHT, pattern_photo
from faceset.errors import SourceError
from faceset.sources.immich_api import ImmichAPI
from factories import close, quadrant_colours
from sources.fake_servers import ImmichServer
from sources.library_spec import IMMICH_JANE, JANE, SpecPhoto, asset_id, immich_api_state

KEY = ImmichServer.KEY


def source(server: ImmichServer, cache: Path, key: str = KEY) -> ImmichAPI:
    return ImmichAPI(server.url, key, cache, timeout=2.0, backoff=0.01)


def export(server: ImmichServer, tmp_path: Path, **select: Any) -> pipeline.ExportResult:
    key = tmp_path / "key"
    key.write_text(KEY)
    cfg = config.load(
        None,
        {
            "library": {"source": "immich", "url": server.url + "/api", "token_file": key,
                        "cache": tmp_path / "cache"},
            "select": select,
            "crop": {"size": 256},
            "export": {"out": tmp_path / "out", "workers": 1},
        },
        environ={},
    )  # fmt: skip
    return pipeline.export(cfg, JANE)


def manifest(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def face_of(tmp_path: Path, rec: dict[str, Any]) -> Image.Image:
    """Return the face box cut out of a written crop."""
    image = Image.open(tmp_path / "out" / rec["image"]).convert("RGB")
    left, top, right, _ = rec["crop"]
    scale = image.width / (right - left)
    box = [(v - o) * scale for v, o in zip(rec["box"], (left, top, left, top), strict=True)]
    return image.crop(tuple(round(v) for v in box))


def upright_face(face: Image.Image) -> bool:
    expected = [TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT]
    return all(close(a, b) for a, b in zip(quadrant_colours(face), expected, strict=True))


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def test_people_are_the_named_ones(immich_server: ImmichServer, tmp_path: Path) -> None:
    people = source(immich_server, tmp_path).people()

    assert [(p.name, p.faces) for p in people] == [(JANE, 4)]


def test_faces_are_cropped_from_the_oriented_originals(
    immich_server: ImmichServer, tmp_path: Path
) -> None:
    result = export(immich_server, tmp_path)

    assert result.summary.written == 4
    assert all(upright_face(face_of(tmp_path, rec)) for rec in manifest(tmp_path))
    assert {r.method for r in immich_server.requests} <= {"GET", "POST"}
    assert {r.path for r in immich_server.calls(method="POST")} == {"/api/search/metadata"}


def test_trashed_archived_and_hidden_assets_are_left_out(
    spec: list[SpecPhoto], tmp_path: Path
) -> None:
    state = immich_api_state(spec)
    state["assets"][0]["visibility"] = "archive"
    state["assets"][1]["isTrashed"] = True
    state["assets"][2]["visibility"] = "hidden"
    server = ImmichServer(state)
    try:
        src = source(server, tmp_path)
        jane = src.people()[0]
        default = {f.photo_uid for f in src.faces(jane)}
        archived = {f.photo_uid for f in src.faces(jane, include_archived=True)}
    finally:
        server.close()

    assert default == {asset_id(4)}
    assert archived == {asset_id(1), asset_id(4)}


def test_archived_assets_on_a_server_before_visibility(
    spec: list[SpecPhoto], tmp_path: Path
) -> None:
    state = immich_api_state(spec)
    for asset in state["assets"]:
        del asset["visibility"]
    state["assets"][0]["isArchived"] = True
    server = ImmichServer(state, version=(1, 120, 2))
    try:
        src = source(server, tmp_path)
        jane = src.people()[0]
        default = {f.photo_uid for f in src.faces(jane)}
        archived = {f.photo_uid for f in src.faces(jane, include_archived=True)}
    finally:
        server.close()

    assert asset_id(1) not in default
    assert asset_id(1) in archived
    # Each version is asked only in its own terms: no refused visibility search first.
    searches = [r.body for r in server.calls(method="POST")]
    assert not any("visibility" in body for body in searches)


def test_a_current_server_is_never_sent_the_archive_flag(
    immich_server: ImmichServer, tmp_path: Path
) -> None:
    src = source(immich_server, tmp_path)
    list(src.faces(src.people()[0], include_archived=True))

    searches = [r.body for r in immich_server.calls(method="POST")]
    assert {
        "personIds": [IMMICH_JANE],
        "visibility": "archive",
        "page": 1,
        "size": 1000,
    } in searches
    assert not any("withArchived" in body for body in searches)


def test_an_upload_is_hashed_whatever_fields_the_spec_dropped(
    spec: list[SpecPhoto], tmp_path: Path
) -> None:
    # isExternal left the API's asset long ago; only libraryId tells an external library's file.
    state = immich_api_state(spec)
    state["assets"][0]["isExternal"] = True
    state["assets"][1]["libraryId"] = "0b0e5a0e-3333-4c0c-9e0e-0a0b0c0d0e03"
    server = ImmichServer(state)
    try:
        src = source(server, tmp_path)
        hashes = {f.photo_uid: f.file_hash for f in src.faces(src.people()[0])}
    finally:
        server.close()

    assert hashes[asset_id(1)] == spec[0].sha1
    assert hashes[asset_id(2)] == ""


def test_an_edited_asset_is_cropped_from_its_edited_image(
    spec: list[SpecPhoto], tmp_path: Path
) -> None:
    # The user cropped 400 px off the left in Immich's editor: the API moves the box with it.
    p = spec[0]
    upright = pattern_photo(p.size, p.face, seed=p.seed)
    edited = upright.crop((400, 0, p.size[0], p.size[1]))
    state = immich_api_state([p])
    state["assets"][0]["isEdited"] = True
    state["edited"] = {asset_id(1): jpeg(edited)}
    state["faces"][asset_id(1)] = [{
        "id": "face-1", "imageWidth": edited.width // 2, "imageHeight": edited.height // 2,
        "boundingBoxX1": (p.face[0] - 400) // 2, "boundingBoxY1": p.face[1] // 2,
        "boundingBoxX2": (p.face[2] - 400) // 2, "boundingBoxY2": p.face[3] // 2,
        "person": state["people"][0],
    }]  # fmt: skip
    server = ImmichServer(state)
    try:
        result = export(server, tmp_path)
        originals = server.calls(f"/api/assets/{asset_id(1)}/original")
    finally:
        server.close()

    [rec] = manifest(tmp_path)
    assert result.summary.written == 1
    assert [c.query.get("edited") for c in originals] == [["true"]]
    assert rec["box"] == [200.0, 400.0, 500.0, 700.0]
    assert upright_face(face_of(tmp_path, rec))


def test_a_raw_asset_is_cropped_from_its_preview(spec: list[SpecPhoto], tmp_path: Path) -> None:
    p = spec[1]
    upright = pattern_photo(p.size, p.face, seed=p.seed)
    state = immich_api_state([p])
    state["assets"][0]["originalFileName"] = "IMG_0002.CR2"
    # Immich's preview is oriented (no EXIF rotation left) and smaller than the original.
    state["previews"] = {asset_id(1): jpeg(upright.resize((p.size[0] // 2, p.size[1] // 2)))}
    server = ImmichServer(state)
    try:
        result = export(server, tmp_path)
        assert not server.calls(f"/api/assets/{asset_id(1)}/original")
    finally:
        server.close()

    [rec] = manifest(tmp_path)
    assert result.summary.written == 1
    assert rec["box"] == [200.0, 250.0, 350.0, 400.0]
    assert upright_face(face_of(tmp_path, rec))


def test_a_box_measured_on_another_shape_is_skipped(
    spec: list[SpecPhoto], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = immich_api_state([spec[0]])
    face = state["faces"][asset_id(1)][0]
    face["imageWidth"], face["imageHeight"] = face["imageHeight"], face["imageWidth"]
    server = ImmichServer(state)
    try:
        src = source(server, tmp_path)
        faces = list(src.faces(src.people()[0]))
    finally:
        server.close()

    assert faces == []
    assert "on a 600x800 image of another shape" in caplog.text


def test_confirmed_only_is_refused(immich_server: ImmichServer, tmp_path: Path) -> None:
    src = source(immich_server, tmp_path)

    with pytest.raises(SourceError, match="Immich does not record which faces you confirmed"):
        list(src.faces(src.people()[0], confirmed_only=True))


def test_a_wrong_api_key_is_one_clear_error(immich_server: ImmichServer, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"Immich at .* refused the credentials \(401\); check"):
        source(immich_server, tmp_path, key="wrong")


def test_an_old_immich_is_unsupported(spec: list[SpecPhoto], tmp_path: Path) -> None:
    server = ImmichServer(immich_api_state(spec), version=(1, 98, 0))
    try:
        with pytest.raises(SourceError, match=r"Immich 1\.98\.0 .* is too old; faceset needs"):
            source(server, tmp_path)
    finally:
        server.close()


def test_a_server_that_is_not_immich(tmp_path: Path) -> None:
    from sources.fake_servers import PhotoPrismServer

    server = PhotoPrismServer({})
    try:
        with pytest.raises(SourceError, match="is not an Immich server"):
            source(server, tmp_path)  # type: ignore[arg-type]
    finally:
        server.close()
