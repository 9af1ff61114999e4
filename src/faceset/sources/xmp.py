"""Face regions written into the photos themselves: a plain folder, no library.

Reads XMP MWG regions (``mwg-rs``, Lightroom, digiKam, Picasa, ExifTool) and Microsoft Photo
regions (``MP:RegionInfo``) from sidecars (``IMG.jpg.xmp`` or ``IMG.xmp``) and from the packet
embedded in JPEG, PNG, WebP, TIFF and HEIF files. The packet is parsed as RDF/XML with
defusedxml, with namespaces, so attribute and element forms of the same property both read.
A person is a region name.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
import numpy as np
from defusedxml import DefusedXmlException
from PIL import Image

from faceset.crop import geometry
from faceset.crop.decode import open_photo, upright
from faceset.model import Box, Face, Person, RelBox
from faceset.sources import regions
from faceset.sources.people import fold, slugify
from faceset.sources.photo_info import PhotoInfo, read_photo_info

log = logging.getLogger(__name__)

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
MWG_RS = "{http://www.metadataworkinggroup.com/schemas/regions/}"
ST_AREA = "{http://ns.adobe.com/xmp/sType/Area#}"
ST_DIM = "{http://ns.adobe.com/xap/1.0/sType/Dimensions#}"
MP = "{http://ns.microsoft.com/photo/1.2/}"
MPRI = "{http://ns.microsoft.com/photo/1.2/t/RegionInfo#}"
MPREG = "{http://ns.microsoft.com/photo/1.2/t/Region#}"
TIFF = "{http://ns.adobe.com/tiff/1.0/}"
XMP = "{http://ns.adobe.com/xap/1.0/}"

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif", ".avif"}
)
# Photos are shrunk to this side before the detector checks an ambiguous region frame (yuface
# is made for small images and warns above about this size).
DETECTOR_SIDE = 640
# Windows Photo Gallery's name for a face it was told to ignore.
MP_IGNORED = "ffffffffffffffff"


@dataclass(frozen=True, slots=True)
class Region:
    """One face region (``name`` '' when unnamed), ``box`` relative to its packet's frame."""

    name: str
    box: RelBox


@dataclass(slots=True)
class RegionPacket:
    """The face regions of one XMP packet, named or not, and what is needed to place them."""

    regions: list[Region] = field(default_factory=list)
    kind: str = ""
    """'mwg' or 'mp': which schema the regions came from."""
    applied: tuple[float, float] | None = None
    """MWG AppliedToDimensions (w, h), when given."""
    orientation: int | None = None
    """tiff:Orientation the packet itself carries, when any."""
    creator: str = ""


def parse_packet(packet: bytes) -> RegionPacket:
    """Return the face regions of an XMP packet (MWG preferred over MP when both exist).

    Raises ValueError when the packet is not well-formed XML or uses DTDs/entities.
    """
    try:
        root = SafeET.fromstring(packet.rstrip(b"\x00 \t\r\n"))
    except (ParseError, DefusedXmlException) as e:
        raise ValueError(f"not a readable XMP packet: {e}") from None
    result = _mwg_regions(root)
    if not any(r.name for r in result.regions):
        mp = _mp_regions(root)
        if any(r.name for r in mp):
            result.regions, result.kind, result.applied = mp, "mp", None
    orientation = _integer(_simple(root, TIFF + "Orientation"))
    result.orientation = orientation if orientation and 1 <= orientation <= 8 else None
    result.creator = _simple(root, XMP + "CreatorTool")
    return result


def _mwg_regions(root: Element) -> RegionPacket:
    found = RegionPacket(kind="mwg")
    for info in root.iter(MWG_RS + "Regions"):
        nodes = _nodes(info)
        dims = _struct(nodes, MWG_RS + "AppliedToDimensions")
        applied = None
        if dims:
            w, h = _real(_value(dims, ST_DIM + "w")), _real(_value(dims, ST_DIM + "h"))
            applied = (w, h) if w and h and w > 0 and h > 0 else None
        found.applied = found.applied or applied
        for item in _items(nodes, MWG_RS + "RegionList"):
            kind = _value(item, MWG_RS + "Type")
            name = _value(item, MWG_RS + "Name").strip()
            area = _struct(item, MWG_RS + "Area")
            if kind.lower() != "face" or not area:
                continue
            box = _mwg_box(area, applied)
            if box is not None:
                found.regions.append(Region(name, box))
    return found


def _mwg_box(area: list[Element], applied: tuple[float, float] | None) -> RelBox | None:
    x, y, w, h = (_real(_value(area, ST_AREA + k)) for k in ("x", "y", "w", "h"))
    if x is None or y is None or w is None or h is None:
        return None
    unit = _value(area, ST_AREA + "unit").lower() or "normalized"
    if unit == "pixel":
        if applied is None:
            return None  # pixels of an unknown size cannot be placed
        x, w = x / applied[0], w / applied[0]
        y, h = y / applied[1], h / applied[1]
    elif unit != "normalized":
        return None
    return regions.mwg_area(x, y, w, h)


def _mp_regions(root: Element) -> list[Region]:
    found = []
    for info in root.iter(MP + "RegionInfo"):
        for item in _items(_nodes(info), MPRI + "Regions"):
            name = _value(item, MPREG + "PersonDisplayName").strip()
            box = regions.mp_rectangle(_value(item, MPREG + "Rectangle"))
            if box is not None:
                found.append(Region("" if name.lower() == MP_IGNORED else name, box))
    return found


# RDF lets a struct's fields be attributes of the property element, attributes or children of an
# rdf:Description inside it, or children of an rdf:parseType="Resource" element. These helpers
# read all of them: a "struct" is the list of elements that may carry its fields.


def _nodes(element: Element) -> list[Element]:
    return [element, *element.findall(RDF + "Description")]


def _value(nodes: list[Element], name: str) -> str:
    for node in nodes:
        if name in node.attrib:
            return node.attrib[name].strip()
        child = node.find(name)
        if child is not None:
            return (child.text or "").strip()
    return ""


def _struct(nodes: list[Element], name: str) -> list[Element]:
    for node in nodes:
        child = node.find(name)
        if child is not None:
            return _nodes(child)
    return []


def _items(nodes: list[Element], name: str) -> Iterator[list[Element]]:
    for node in nodes:
        child = node.find(name)
        if child is None:
            continue
        for container in ("Bag", "Seq", "Alt"):
            for array in child.findall(RDF + container):
                for li in array.findall(RDF + "li"):
                    yield _nodes(li)
        return


def _simple(root: Element, name: str) -> str:
    """Return a simple property from any rdf:Description of the packet, or ''."""
    for desc in root.iter(RDF + "Description"):
        value = _value([desc], name)
        if value:
            return value
    return ""


def _real(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def sidecars(path: Path) -> list[Path]:
    """Return the sidecar names writers use for ``path``: ``IMG.jpg.xmp`` and ``IMG.xmp``."""
    names = [path.with_name(path.name + ".xmp"), path.with_suffix(".xmp")]
    names += [p.with_suffix(".XMP") for p in names]
    return list(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class _Tagged:
    """One named region of one photo, already in faceset's frame, with the photo's other faces."""

    person: str
    rel_name: str
    index: int
    box: RelBox
    others: tuple[RelBox, ...]


class XmpFolder:
    """People and faces from the XMP regions of the photos under ``folder``.

    ``default_frame`` is the frame assumed for regions on a rotated photo whose packet cannot
    tell (see :func:`faceset.sources.regions.xmp_frame`).
    """

    name = "xmp"

    def __init__(self, folder: Path, default_frame: regions.Frame = "stored") -> None:
        self.folder = folder
        self.roots = {"/": folder}
        self.default_frame = default_frame
        self._tagged: list[_Tagged] | None = None

    def close(self) -> None:
        self._tagged = None

    def people(self) -> list[Person]:
        """Return everyone named in a region; names equal up to case and accents are one person."""
        counts: dict[str, int] = {}
        names: dict[str, str] = {}
        for tag in self._scan():
            key = fold(tag.person)
            counts[key] = counts.get(key, 0) + 1
            names.setdefault(key, tag.person)
        people = [
            Person(
                uid=_person_uid(names[key]),
                name=names[key],
                slug=slugify(names[key]),
                faces=n,
                confirmed=n,
            )
            for key, n in counts.items()
        ]
        return sorted(people, key=lambda p: (-p.faces, p.name.casefold()))

    def count_faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> int:
        """Return how many faces :meth:`faces` will yield."""
        return sum(1 for _ in self.faces(person))

    def faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> Iterator[Face]:
        """Yield the person's regions in file-name order; every region counts as confirmed."""
        key = fold(person.name)
        for tag in self._scan():
            if fold(tag.person) != key:
                continue
            photo_uid = _uid("p", tag.rel_name)
            yield Face(
                marker_uid=_uid("m", f"{tag.rel_name}#{tag.index}#{tag.person}"),
                file_uid=photo_uid,
                photo_uid=photo_uid,
                subject_uid=person.uid,
                subject_name=person.name,
                root="/",
                file_name=tag.rel_name,
                box=tag.box,
                # Hand-drawn or tool-drawn regions: not pixel squares.
                detected=False,
                confirmed=True,
                others=tag.others,
                # A normalized area is a part of the photo: one far outside it (ExifTool's own
                # test packet has w=h=8, no unit) is a broken region, not a face to clamp.
                box_problem=(
                    f"XMP region {_area_text(tag.box)} reaches outside the photo (normalized"
                    " areas lie within 0..1)"
                    if geometry.outside_unit(tag.box)
                    else ""
                ),
            )

    def _scan(self) -> list[_Tagged]:
        if self._tagged is None:
            self._tagged = [t for path in self._photos() for t in self._read(path)]
            log.info("%s: %d named face regions", self.folder, len(self._tagged))
        return self._tagged

    def _photos(self) -> Iterator[Path]:
        for top, dirs, files in os.walk(self.folder):
            # Hidden folders hold caches and thumbnails (.photoprism, .thumbnails), not photos.
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                    yield Path(top) / name

    def _read(self, path: Path) -> list[_Tagged]:
        rel_name = path.relative_to(self.folder).as_posix()
        packet, where = self._first_named([(p.read_bytes(), p.name) for p in _existing(path)], path)
        if packet is None and not may_embed_regions(path):
            return []  # most photos of a big folder: decided from the JPEG header alone
        info = read_photo_info(path)
        if packet is None and info is not None and info.xmp:
            packet, where = self._first_named([(info.xmp, "embedded")], path)
        if packet is None:
            return []
        if info is None:
            log.warning("%s: not a readable image; its regions cannot be placed", rel_name)
            info = PhotoInfo(1, 1, 1)
        if packet.orientation and packet.orientation != info.orientation and where != "embedded":
            log.warning(
                "%s: the sidecar says orientation %d, the file %d; the file's is used",
                rel_name, packet.orientation, info.orientation,
            )  # fmt: skip
        choice = regions.xmp_frame(
            info.orientation, (info.width, info.height), packet.applied, self.default_frame
        )
        frame, why = choice.frame, choice.reason
        if not choice.certain:
            seen = detected_frame(path, info.orientation, packet)
            if seen is not None:
                frame, why = seen, "the face detector found the faces there"
        log.debug("%s: %s regions from %s in the %s frame (%s)", rel_name, packet.kind, where,
                  frame, why)  # fmt: skip
        boxes = [
            regions.stored_to_oriented(r.box, info.orientation) if frame == "stored" else r.box
            for r in packet.regions
        ]
        return [
            _Tagged(r.name, rel_name, i, boxes[i], tuple(b for j, b in enumerate(boxes) if j != i))
            for i, r in enumerate(packet.regions)
            if r.name
        ]

    def _first_named(
        self, candidates: list[tuple[bytes, str]], path: Path
    ) -> tuple[RegionPacket | None, str]:
        """Return the first packet that names a face, and where it came from."""
        for data, where in candidates:
            try:
                packet = parse_packet(data)
            except ValueError as e:
                log.warning("%s (%s): %s", path.name, where, e)
                continue
            if any(r.name for r in packet.regions):
                return packet, where
        return None, ""


def detected_frame(path: Path, orientation: int, packet: RegionPacket) -> regions.Frame | None:
    """Return the frame in which the local face detector finds more of the named regions.

    None when no detector is installed (``faceset[identity]``), the photo cannot be decoded, or
    both frames fare the same (pattern images, faces turned away, a symmetric mirror).
    """
    from faceset.select import face_model

    if not face_model.available():
        return None
    try:
        photo = open_photo(path.read_bytes())
        image = upright(photo.image.convert("RGB"), photo.orientation)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    image.thumbnail((DETECTOR_SIDE, DETECTOR_SIDE))
    pixels = np.asarray(image)
    w, h = image.size
    hits: dict[regions.Frame, int] = {}
    for frame in ("stored", "oriented"):
        hits[frame] = 0
        for region in packet.regions:
            if not region.name:
                continue
            b = (
                regions.stored_to_oriented(region.box, orientation)
                if frame == "stored"
                else region.box
            )
            expected = Box(b.x * w, b.y * h, (b.x + b.w) * w, (b.y + b.h) * h)
            hits[frame] += face_model.describe(pixels, expected).found
    if hits["stored"] == hits["oriented"]:
        return None
    return "stored" if hits["stored"] > hits["oriented"] else "oriented"


def _existing(path: Path) -> list[Path]:
    return [p for p in sidecars(path) if p.is_file()]


_REGION_SCHEMAS = (b"metadataworkinggroup.com/schemas/regions", b"ns.microsoft.com/photo/1.2")
_JPEG_SOI, _JPEG_SOS, _JPEG_APP1 = b"\xff\xd8", 0xDA, 0xE1


def may_embed_regions(path: Path) -> bool:
    """Return whether the file may carry region XMP; False only for a JPEG whose header has none.

    JPEG keeps XMP in APP1 segments before the image data, so only the header is read. Other
    formats may keep it anywhere: they are always read whole.
    """
    if path.suffix.lower() not in (".jpg", ".jpeg"):
        return True
    try:
        with path.open("rb") as f:
            if f.read(2) != _JPEG_SOI:
                return True  # not really a JPEG: let the decoder say what it is
            while True:
                head = f.read(4)
                if len(head) == 4 and head[:2] == bytes((0xFF, _JPEG_SOS)):
                    return False  # the image data starts: no APP1 carried regions
                if len(head) < 4 or head[0] != 0xFF or head[1] in (0x00, 0xFF):
                    return True  # fill bytes or damage: leave it to the full reader
                size = int.from_bytes(head[2:4], "big") - 2
                if head[1] != _JPEG_APP1:
                    f.seek(size, os.SEEK_CUR)
                    continue
                segment = f.read(size)
                if any(schema in segment for schema in _REGION_SCHEMAS):
                    return True
    except OSError:
        return True


def _uid(prefix: str, text: str) -> str:
    """Return a stable 16-character id for ``text`` (file names may hold any character)."""
    return (
        prefix
        + hashlib.sha1(text.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()[
            :15
        ]
    )


def _person_uid(name: str) -> str:
    return slugify(name) or _uid("x", fold(name))


def _area_text(box: RelBox) -> str:
    """Return a box as the user's XMP states it: the centre and size, normalized."""
    return f"x={box.x + box.w / 2:g} y={box.y + box.h / 2:g} w={box.w:g} h={box.h:g}"
