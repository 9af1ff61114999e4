"""Face regions inside the files: MWG and Microsoft regions, sidecars and embedded packets.

Every orientation is written the way a guideline-following writer does (regions of the stored
image, AppliedToDimensions the stored size) and, for 5-8, the way display-frame writers do; each
must crop the same face as the PhotoPrism database path for the same photo.
"""

from __future__ import annotations

import io
import logging
from dataclasses import astuple
from pathlib import Path

import pytest
from PIL import Image

from faceset.demo.images import pattern_photo, stored
from faceset.model import RelBox
from faceset.sources import open_source, regions
from faceset.sources.config import LibraryConfig
from faceset.sources.xmp import XmpFolder, may_embed_regions, parse_packet
from factories import Database, make_library
from sources.exports import assert_face_upright, assert_same_crops, by_photo, run_export
from sources.library_spec import (
    JANE,
    XMP_HEAD,
    XMP_TAIL,
    SpecPhoto,
    mp_packet,
    mwg_packet,
    mwg_stored_packet,
    photo,
    stored_box,
    write_photoprism_db,
)

ORIENTATIONS = range(1, 9)


def every_orientation() -> list[SpecPhoto]:
    """Return one photo per orientation, the face off-centre so a wrong frame misses it."""
    return [photo(f"o{o}.jpg", o, (1600, 1200), (200, 300, 500, 600), seed=o) for o in ORIENTATIONS]


def embed(data: bytes, packet: bytes) -> bytes:
    """Return the JPEG re-saved with ``packet`` as its XMP (APP1) and its EXIF kept."""
    image = Image.open(io.BytesIO(data))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, exif=image.info["exif"] if "exif" in image.info else b"",
               xmp=packet)  # fmt: skip
    return out.getvalue()


def test_each_orientation_crops_what_photoprism_crops(sqlite_db: Database, tmp_path: Path) -> None:
    photos = every_orientation()
    lib = make_library(sqlite_db.engine, tmp_path / "pp")
    write_photoprism_db(lib, photos)
    run_export({"db": sqlite_db.url, "originals": lib.originals}, tmp_path / "ref")
    folder = tmp_path / "xmp"
    for p in photos:
        (folder / p.name).parent.mkdir(parents=True, exist_ok=True)
        (folder / p.name).write_bytes(p.data)
        (folder / (p.name + ".xmp")).write_bytes(mwg_stored_packet(p))

    run_export({"source": "xmp", "originals": folder}, tmp_path / "out")

    reference = by_photo(tmp_path / "ref", str)
    assert len(reference) == 8
    for rec in reference.values():
        assert_face_upright(tmp_path / "ref", rec)
    assert_same_crops(
        reference, tmp_path / "ref", by_photo(tmp_path / "out", str), tmp_path / "out"
    )


def test_display_frame_regions_are_told_by_their_dimensions(
    sqlite_db: Database, tmp_path: Path
) -> None:
    # Writers that ignore the MWG rule store regions of the upright image and its size: for
    # orientations 5-8 the swapped AppliedToDimensions gives them away.
    photos = [p for p in every_orientation() if p.orientation >= 5]
    lib = make_library(sqlite_db.engine, tmp_path / "pp")
    write_photoprism_db(lib, photos)
    run_export({"db": sqlite_db.url, "originals": lib.originals}, tmp_path / "ref")
    folder = tmp_path / "xmp"
    folder.mkdir()
    for p in photos:
        # Embedded this time, in the JPEG's own APP1 segment.
        (folder / p.name).write_bytes(embed(p.data, mwg_packet([(JANE, p.box)], p.size)))

    run_export({"source": "xmp", "originals": folder}, tmp_path / "out")

    assert_same_crops(
        by_photo(tmp_path / "ref", str), tmp_path / "ref",
        by_photo(tmp_path / "out", str), tmp_path / "out",
    )  # fmt: skip


@pytest.mark.parametrize(("setting", "expected"), [("stored", False), ("oriented", True)])
def test_the_setting_decides_where_the_file_cannot(
    tmp_path: Path, setting: str, expected: bool
) -> None:
    # Orientation 3 keeps the shape: nothing in the file tells which frame the regions are in.
    p = every_orientation()[2]
    (tmp_path / p.name).write_bytes(p.data)
    (tmp_path / (p.name + ".xmp")).write_bytes(mwg_packet([(JANE, p.box)], p.size))
    src = open_source(LibraryConfig(source="xmp", originals=tmp_path, xmp_frame=setting))  # type: ignore[arg-type]

    [face] = src.faces(src.people()[0])

    assert (astuple(face.box) == pytest.approx(astuple(p.box))) is expected


def test_microsoft_regions_are_read_when_there_are_no_mwg_ones(tmp_path: Path) -> None:
    p = every_orientation()[0]
    (tmp_path / "a.jpg").write_bytes(p.data)
    (tmp_path / "a.xmp").write_bytes(
        mp_packet([(JANE, p.box), ("ffffffffffffffff", RelBox(0.7, 0.1, 0.1, 0.1))])
    )
    src = XmpFolder(tmp_path)

    [jane] = src.people()
    [face] = src.faces(jane)

    assert astuple(face.box) == pytest.approx(astuple(p.box))
    assert face.others == (RelBox(0.7, 0.1, 0.1, 0.1),)  # the ignored face is still a face
    assert face.file_name == "a.jpg"


def test_people_are_region_names_in_any_case(tmp_path: Path) -> None:
    p = every_orientation()[0]
    for name, who in (("a.jpg", JANE), ("b.jpg", "jane doe"), ("c.jpg", "Max")):
        (tmp_path / name).write_bytes(embed(p.data, mwg_packet([(who, p.box)], p.size)))
    (tmp_path / ".thumbnails").mkdir()
    (tmp_path / ".thumbnails" / "a.jpg").write_bytes(
        embed(p.data, mwg_packet([("Hidden", p.box)], p.size))
    )

    people = XmpFolder(tmp_path).people()

    assert [(x.name, x.faces) for x in people] == [(JANE, 2), ("Max", 1)]


def test_element_form_and_pixel_units(tmp_path: Path) -> None:
    body = (
        '<rdf:Description rdf:about=""'
        ' xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"'
        ' xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"'
        ' xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#">'
        "<mwg-rs:Regions><rdf:Description>"
        "<mwg-rs:AppliedToDimensions><rdf:Description><stDim:w>1600</stDim:w>"
        "<stDim:h>1200</stDim:h><stDim:unit>pixel</stDim:unit></rdf:Description>"
        "</mwg-rs:AppliedToDimensions>"
        "<mwg-rs:RegionList><rdf:Seq><rdf:li rdf:parseType='Resource'>"
        "<mwg-rs:Name>Jane Doe</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type>"
        "<mwg-rs:Area rdf:parseType='Resource'><stArea:x>350</stArea:x><stArea:y>450</stArea:y>"
        "<stArea:w>300</stArea:w><stArea:h>300</stArea:h><stArea:unit>pixel</stArea:unit>"
        "</mwg-rs:Area></rdf:li>"
        "<rdf:li><rdf:Description mwg-rs:Type='Pet' mwg-rs:Name='Rex'/></rdf:li>"
        "</rdf:Seq></mwg-rs:RegionList></rdf:Description></mwg-rs:Regions></rdf:Description>"
    )

    packet = parse_packet((XMP_HEAD + body + XMP_TAIL).encode())

    assert [(r.name, r.box) for r in packet.regions] == [
        (JANE, RelBox(200 / 1600, 300 / 1200, 300 / 1600, 300 / 1200))
    ]
    assert packet.applied == (1600, 1200)


def test_entities_are_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = every_orientation()[0]
    (tmp_path / "a.jpg").write_bytes(p.data)
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>'
    )
    (tmp_path / "a.jpg.xmp").write_bytes(bomb)

    with caplog.at_level(logging.WARNING):
        assert XmpFolder(tmp_path).people() == []

    assert "not a readable XMP packet" in caplog.text


def test_a_sidecar_that_disagrees_on_orientation_is_flagged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = every_orientation()[5]
    (tmp_path / "a.jpg").write_bytes(p.data)
    (tmp_path / "a.jpg.xmp").write_bytes(
        mwg_packet([(JANE, stored_box(p, p.face))], p.stored_size, orientation=1)
    )

    with caplog.at_level(logging.WARNING):
        [face] = XmpFolder(tmp_path).faces(XmpFolder(tmp_path).people()[0])

    assert "the sidecar says orientation 1, the file 6" in caplog.text
    assert astuple(face.box) == pytest.approx(astuple(p.box))


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_stored_boxes_turn_with_the_photo(orientation: int) -> None:
    # Paint the face on an upright photo, store it rotated, and find it in the stored pixels.
    size, face = (160, 120), (20, 30, 60, 50)
    upright = pattern_photo(size, face, seed=1)
    pixels = stored(upright, orientation)
    p = SpecPhoto("x.jpg", orientation, size, face)
    box = stored_box(p, face)

    left, top = round(box.x * pixels.width), round(box.y * pixels.height)
    right, bottom = left + round(box.w * pixels.width), top + round(box.h * pixels.height)
    colours = {
        pixels.getpixel((x, y)) for x in (left + 2, right - 3) for y in (top + 2, bottom - 3)
    }

    assert len(colours) == 4  # the four quadrant colours: the box sits on the face
    assert astuple(regions.stored_to_oriented(box, orientation)) == pytest.approx(astuple(p.box))


def test_jpeg_headers_without_regions_are_skipped_unread(tmp_path: Path) -> None:
    p = every_orientation()[0]
    plain, tagged, png = tmp_path / "plain.jpg", tmp_path / "tagged.jpg", tmp_path / "x.png"
    plain.write_bytes(p.data)
    tagged.write_bytes(embed(p.data, mwg_packet([(JANE, p.box)], p.size)))
    png.write_bytes(b"\x89PNG")

    assert [may_embed_regions(f) for f in (plain, tagged, png)] == [False, True, True]


def test_the_face_detector_settles_a_frame_the_file_cannot(tmp_path: Path) -> None:
    from faceset.demo.images import astronaut, compose, encode
    from faceset.select import face_model

    if not face_model.available():
        pytest.skip("no local face detector (pip install 'faceset[identity]')")
    # Upside down (3): the shape cannot tell, and the writer ignored the MWG rule.
    upright, face = compose(astronaut(), (1200, 900), 2.0, (300, 150))
    box = RelBox(
        face[0] / 1200, face[1] / 900, (face[2] - face[0]) / 1200, (face[3] - face[1]) / 900
    )
    (tmp_path / "a.jpg").write_bytes(encode(upright, "JPEG", 3))
    (tmp_path / "a.jpg.xmp").write_bytes(mwg_packet([(JANE, box)], (1200, 900)))
    src = XmpFolder(tmp_path, default_frame="stored")

    [found] = src.faces(src.people()[0])

    assert astuple(found.box) == pytest.approx(astuple(box), abs=1e-5)


def test_an_area_outside_the_photo_is_a_bad_box(tmp_path: Path) -> None:
    # As in ExifTool's own test packet: w=h=8 with no unit, and one a little past the edge.
    p = every_orientation()[0]
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, (x, y, w, h) in {"huge": (0.5, 0.5, 8, 8), "past": (0.95, 0.5, 0.2, 0.2),
                               "edge": (0.9, 0.5, 0.2, 0.2)}.items():  # fmt: skip
        (folder / f"{name}.jpg").write_bytes(p.data)
        (folder / f"{name}.xmp").write_bytes(
            (
                XMP_HEAD + '<rdf:Description rdf:about=""'
                ' xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"'
                ' xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"><mwg-rs:Regions'
                ' rdf:parseType="Resource"><mwg-rs:RegionList><rdf:Bag>'
                f'<rdf:li><rdf:Description mwg-rs:Name="{JANE}" mwg-rs:Type="Face">'
                f'<mwg-rs:Area stArea:x="{x}" stArea:y="{y}" stArea:w="{w}" stArea:h="{h}"/>'
                "</rdf:Description></rdf:li></rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>"
                "</rdf:Description>" + XMP_TAIL
            ).encode()
        )

    result = run_export({"source": "xmp", "originals": folder}, tmp_path / "out")

    bad = {p["source"]["path"]: p["detail"] for p in result.problems if p["reason"] == "bad_box"}
    assert sorted(bad) == ["huge.jpg", "past.jpg"]
    assert "x=0.5 y=0.5 w=8 h=8 reaches outside the photo" in bad["huge.jpg"]
    assert result.summary.written == 1  # the box that ends on the edge is a face
