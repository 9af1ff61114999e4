"""One small library, written the way each photo library stores it.

The same photos (real JPEGs with EXIF orientation) and the same face boxes become a PhotoPrism
index, a PhotoPrism API, an Immich API, an Immich PostgreSQL database, a digiKam database and a
folder of XMP sidecars, each in its own coordinate conventions, so every source can be checked
against the PhotoPrism database path.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from faceset.crop.geometry import stored_point
from faceset.demo.images import encode, pattern_photo, write
from faceset.demo.library import MarkerSpec
from faceset.model import RelBox
from factories import LibraryFixture

JANE = "Jane Doe"
PREVIEW_SCALE = 2  # Immich measures faces on a preview this many times smaller


@dataclass(frozen=True)
class SpecPhoto:
    """A photo: its name, EXIF orientation, upright size and upright face boxes in pixels."""

    name: str
    orientation: int
    size: tuple[int, int]
    face: tuple[int, int, int, int]
    other: tuple[int, int, int, int] | None = None
    taken: datetime = datetime(2024, 1, 1, 12)
    seed: int = 0
    data: bytes = field(default=b"", repr=False)

    @property
    def box(self) -> RelBox:
        return rel(self.face, self.size)

    @property
    def other_box(self) -> RelBox | None:
        return rel(self.other, self.size) if self.other else None

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.data, usedforsecurity=False).hexdigest()

    @property
    def stored_size(self) -> tuple[int, int]:
        w, h = self.size
        return (h, w) if self.orientation >= 5 else (w, h)

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]


def rel(face: tuple[int, int, int, int], size: tuple[int, int]) -> RelBox:
    w, h = size
    return RelBox(face[0] / w, face[1] / h, (face[2] - face[0]) / w, (face[3] - face[1]) / h)


def photo(name: str, orientation: int, size: tuple[int, int], face: tuple[int, int, int, int],
          other: tuple[int, int, int, int] | None = None, seed: int = 1,
          taken: datetime | None = None) -> SpecPhoto:  # fmt: skip
    """Return a spec photo with its JPEG bytes: a pattern whose face quadrants show orientation."""
    upright = pattern_photo(size, face, seed=seed)
    return SpecPhoto(
        name, orientation, size, face, other, taken or datetime(2024, 1, seed, 12), seed,
        encode(upright, "JPEG", orientation),
    )  # fmt: skip


def small_library() -> list[SpecPhoto]:
    """Return four photos: upright (another face beside Jane's), rotated, upside down, transposed."""
    return [
        photo("2024/upright.jpg", 1, (1600, 1200), (600, 400, 900, 700), (1000, 450, 1200, 650), 1),
        photo("2024/rot6.jpg", 6, (1200, 1600), (400, 500, 700, 800), seed=2),
        photo("2023/rot3.jpg", 3, (1600, 1200), (200, 300, 500, 600), seed=3),
        photo("2023/trans5.jpg", 5, (1200, 1600), (500, 900, 800, 1200), seed=4),
    ]


def stored_box(photo: SpecPhoto, box: tuple[int, int, int, int]) -> RelBox:
    """Return an upright pixel box as a box relative to the **stored** image (MWG's frame)."""
    w, h = photo.size
    x0, y0 = stored_point(box[0], box[1], w, h, photo.orientation)
    x1, y1 = stored_point(box[2], box[3], w, h, photo.orientation)
    sw, sh = photo.stored_size
    return RelBox(min(x0, x1) / sw, min(y0, y1) / sh, abs(x1 - x0) / sw, abs(y1 - y0) / sh)


# -- PhotoPrism's index -----------------------------------------------------------------------


def write_photoprism_db(lib: LibraryFixture, photos: list[SpecPhoto]) -> dict[str, str]:
    """Index the photos for Jane; return each photo's file name as PhotoPrism records it."""
    jane = lib.people.get(JANE) or lib.person(JANE, slug="jane-doe")
    for p in photos:
        extra = (MarkerSpec(p.other_box, "", confirmed=False),) if p.other_box else ()
        lib.photo_file(p.name, jane, orientation=p.orientation, size=p.size, face=p.face,
                       data=p.data, box=p.box, extra=extra, taken=p.taken)  # fmt: skip
    return {p.name: p.name for p in photos}


# -- PhotoPrism's REST API --------------------------------------------------------------------


def uid(prefix: str, n: int) -> str:
    return f"{prefix}{n:015d}"


def photoprism_api_state(photos: list[SpecPhoto]) -> dict[str, Any]:
    """Return subjects, photos (merged, with Files and Markers) and file bytes by hash."""
    jane = uid("j", 1)
    listed = []
    for i, p in enumerate(photos, 1):
        file_uid = uid("f", i)
        markers = [_pp_marker(uid("m", i), file_uid, p.box, jane, "manual")]
        if p.other_box:
            markers.append(_pp_marker(uid("m", 100 + i), file_uid, p.other_box, "", ""))
        primary = {
            "UID": file_uid, "PhotoUID": uid("p", i), "Name": p.name, "Root": "/",
            "Hash": p.sha1, "Size": len(p.data), "Primary": True, "FileType": "jpg",
            "MediaType": "image", "Mime": "image/jpeg", "Sidecar": False, "Missing": False,
            "Width": p.size[0], "Height": p.size[1], "Orientation": p.orientation,
            "OrientationSrc": "meta", "Markers": markers,
        }  # fmt: skip
        # Every photo has a metadata sidecar too: files, not photos, fill PhotoPrism's pages.
        sidecar = {
            "UID": uid("f", 500 + i), "PhotoUID": uid("p", i), "Name": p.name + ".yml",
            "Root": "sidecar", "Hash": "0" * 40, "FileType": "yml", "Sidecar": True,
        }  # fmt: skip
        listed.append({
            "ID": str(i), "UID": uid("p", i), "Type": "image",
            "TakenAt": p.taken.strftime("%Y-%m-%dT%H:%M:%SZ"), "Title": p.basename,
            "Files": [primary, sidecar],
        })  # fmt: skip
    subjects = [
        {"UID": jane, "MarkerUID": uid("m", 1), "MarkerSrc": "image", "Type": "person",
         "Slug": "jane-doe", "Name": JANE, "FileCount": len(photos), "PhotoCount": len(photos)},
        {"UID": uid("j", 2), "Type": "person", "Slug": "max", "Name": "Max", "Hidden": True},
    ]  # fmt: skip
    return {"subjects": subjects, "photos": listed, "blobs": {p.sha1: p.data for p in photos}}


def _pp_marker(muid: str, file_uid: str, box: RelBox, subject: str, src: str) -> dict[str, Any]:
    marker: dict[str, Any] = {
        "UID": muid, "FileUID": file_uid, "Type": "face", "Src": "image", "Name": "",
        "Review": False, "Invalid": False, "FaceID": "", "SubjUID": subject, "SubjSrc": src,
        "X": box.x, "Y": box.y, "W": box.w, "H": box.h, "Size": 300, "Score": 60,
        "Thumb": "", "CreatedAt": "2024-06-01T10:00:00Z",
    }  # fmt: skip
    if subject:
        marker["FaceDist"] = 0.3
    return marker


# -- Immich ------------------------------------------------------------------------------------

IMMICH_OWNER = "6f2f1c54-6a4c-4c56-9c1e-1a2b3c4d5e6f"
IMMICH_JANE = "0b0e5a0e-1111-4c0c-9e0e-0a0b0c0d0e01"
IMMICH_UNNAMED = "0b0e5a0e-2222-4c0c-9e0e-0a0b0c0d0e02"


def asset_id(i: int) -> str:
    return str(uuid.UUID(int=0xA5 << 120 | i))


def face_id(i: int) -> str:
    return str(uuid.UUID(int=0xFA << 120 | i))


def immich_box(p: SpecPhoto, box: tuple[int, int, int, int]) -> dict[str, int]:
    """Return Immich's face fields: corners in pixels of a preview PREVIEW_SCALE times smaller."""
    w, h = p.size
    return {
        "imageWidth": w // PREVIEW_SCALE, "imageHeight": h // PREVIEW_SCALE,
        "boundingBoxX1": box[0] // PREVIEW_SCALE, "boundingBoxY1": box[1] // PREVIEW_SCALE,
        "boundingBoxX2": box[2] // PREVIEW_SCALE, "boundingBoxY2": box[3] // PREVIEW_SCALE,
    }  # fmt: skip


def immich_path(p: SpecPhoto) -> str:
    return f"/data/library/admin/{p.name}"


def immich_api_state(photos: list[SpecPhoto]) -> dict[str, Any]:
    """Return people, assets, faces per asset and original bytes per asset id, as the API has them."""
    person = {
        "id": IMMICH_JANE,
        "name": JANE,
        "birthDate": None,
        "thumbnailPath": "",
        "isHidden": False,
        "isFavorite": False,
        "updatedAt": "2024-06-01T10:00:00.000Z",
    }
    unnamed = {**person, "id": IMMICH_UNNAMED, "name": ""}  # fmt: skip
    assets, faces, blobs = [], {}, {}
    for i, p in enumerate(photos, 1):
        aid = asset_id(i)
        assets.append({
            "id": aid, "type": "IMAGE", "ownerId": IMMICH_OWNER, "deviceId": "CLI",
            "originalPath": immich_path(p), "originalFileName": p.basename,
            "originalMimeType": "image/jpeg",
            "checksum": base64.b64encode(bytes.fromhex(p.sha1)).decode(),
            "fileCreatedAt": p.taken.replace(tzinfo=UTC).isoformat().replace("+00:00", ".000Z"),
            "localDateTime": p.taken.isoformat() + ".000Z", "updatedAt": "2024-06-01T10:00:00Z",
            "isFavorite": False, "isArchived": False, "isTrashed": False, "isOffline": False,
            "visibility": "timeline", "libraryId": None, "hasMetadata": True,
            "exifInfo": {"exifImageWidth": p.stored_size[0], "exifImageHeight": p.stored_size[1],
                         "orientation": str(p.orientation)},
        })  # fmt: skip
        found = [{"id": face_id(i), **immich_box(p, p.face), "sourceType": "machine-learning",
                  "person": person}]  # fmt: skip
        if p.other:
            found.append({"id": face_id(100 + i), **immich_box(p, p.other),
                          "sourceType": "machine-learning", "person": unnamed})  # fmt: skip
        faces[aid] = found
        blobs[aid] = p.data
    return {"people": [person, unnamed], "assets": assets, "faces": faces, "blobs": blobs}


def immich_schema(plural: bool) -> list[str]:
    """Return Immich's DDL for the tables faceset reads: 1.137+ (singular) or 1.12x (plural)."""
    t = {"user": "users", "asset": "assets", "face": "asset_faces", "file": "asset_files",
         "exif": "exif"} if plural else {"user": "user", "asset": "asset", "face": "asset_face",
                                          "file": "asset_file", "exif": "asset_exif"}  # fmt: skip
    # Before 1.133 archived and hidden were flags; visibility replaced them.
    visibility = (
        '"isArchived" boolean NOT NULL DEFAULT false, "isVisible" boolean NOT NULL DEFAULT true'
        if plural
        else "visibility asset_visibility_enum NOT NULL DEFAULT 'timeline'"
    )
    face_extra = (
        ""
        if plural
        else ', "deletedAt" timestamp with time zone, "updatedAt" timestamp with time zone'
        ' NOT NULL DEFAULT now(), "isVisible" boolean NOT NULL DEFAULT true'
    )
    return [
        "CREATE TYPE assets_status_enum AS ENUM ('active', 'trashed', 'deleted')",
        "CREATE TYPE asset_visibility_enum AS ENUM ('archive', 'timeline', 'hidden', 'locked')",
        "CREATE TYPE asset_face_source_type AS ENUM ('machine-learning', 'exif', 'manual')",
        f'CREATE TABLE "{t["user"]}" (id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,'
        " email character varying NOT NULL, name character varying NOT NULL DEFAULT '')",
        f'CREATE TABLE "{t["asset"]}" (id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,'
        ' "deviceAssetId" character varying NOT NULL, "ownerId" uuid NOT NULL'
        f' REFERENCES "{t["user"]}" (id) ON DELETE CASCADE, "deviceId" character varying NOT NULL,'
        ' type character varying NOT NULL, "originalPath" character varying NOT NULL,'
        ' "fileCreatedAt" timestamp with time zone NOT NULL,'
        ' "fileModifiedAt" timestamp with time zone NOT NULL,'
        ' "isFavorite" boolean NOT NULL DEFAULT false, duration character varying,'
        " \"encodedVideoPath\" character varying DEFAULT '', checksum bytea NOT NULL,"
        ' "livePhotoVideoId" uuid, "updatedAt" timestamp with time zone NOT NULL DEFAULT now(),'
        ' "createdAt" timestamp with time zone NOT NULL DEFAULT now(),'
        ' "originalFileName" character varying NOT NULL, "sidecarPath" character varying,'
        ' thumbhash bytea, "isOffline" boolean NOT NULL DEFAULT false, "libraryId" uuid,'
        ' "isExternal" boolean NOT NULL DEFAULT false, "deletedAt" timestamp with time zone,'
        ' "localDateTime" timestamp with time zone NOT NULL, "stackId" uuid, "duplicateId" uuid,'
        f" status assets_status_enum NOT NULL DEFAULT 'active', {visibility})",
        "CREATE TABLE person (id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,"
        ' "createdAt" timestamp with time zone NOT NULL DEFAULT now(),'
        ' "updatedAt" timestamp with time zone NOT NULL DEFAULT now(),'
        f' "ownerId" uuid NOT NULL REFERENCES "{t["user"]}" (id) ON DELETE CASCADE,'
        " name character varying NOT NULL DEFAULT '',"
        " \"thumbnailPath\" character varying NOT NULL DEFAULT '',"
        ' "isHidden" boolean NOT NULL DEFAULT false, "birthDate" date, "faceAssetId" uuid,'
        ' "isFavorite" boolean NOT NULL DEFAULT false, color character varying)',
        f'CREATE TABLE "{t["face"]}" (id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,'
        f' "assetId" uuid NOT NULL REFERENCES "{t["asset"]}" (id) ON DELETE CASCADE,'
        ' "personId" uuid REFERENCES person (id) ON DELETE SET NULL,'
        ' "imageWidth" integer NOT NULL DEFAULT 0, "imageHeight" integer NOT NULL DEFAULT 0,'
        ' "boundingBoxX1" integer NOT NULL DEFAULT 0, "boundingBoxY1" integer NOT NULL DEFAULT 0,'
        ' "boundingBoxX2" integer NOT NULL DEFAULT 0, "boundingBoxY2" integer NOT NULL DEFAULT 0,'
        " \"sourceType\" asset_face_source_type NOT NULL DEFAULT 'machine-learning'"
        f"{face_extra})",
        f'CREATE TABLE "{t["file"]}" (id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,'
        f' "assetId" uuid NOT NULL REFERENCES "{t["asset"]}" (id) ON DELETE CASCADE,'
        ' "createdAt" timestamp with time zone NOT NULL DEFAULT now(),'
        ' "updatedAt" timestamp with time zone NOT NULL DEFAULT now(),'
        " type character varying NOT NULL, path character varying NOT NULL,"
        ' UNIQUE ("assetId", type))',
        f'CREATE TABLE "{t["exif"]}" ("assetId" uuid NOT NULL PRIMARY KEY'
        f' REFERENCES "{t["asset"]}" (id) ON DELETE CASCADE, "exifImageWidth" integer,'
        ' "exifImageHeight" integer, orientation character varying)',
    ]


def cluster_group_migration() -> list[str]:
    """Return Immich 3.2's "cluster group" migration (immich-app/immich#31544), as DDL and updates.

    Written from the upstream migration: people move into ``person_group`` rows of the owner's
    ``cluster_group``; ``person`` gains ``personGroupId`` and loses ``id``, its key becoming
    (``ownerId``, ``personGroupId``); ``asset_face."personId"`` is renamed ``"personGroupId"`` and
    points at the group. Each person's group keeps the person's old id, so faces keep their value.
    """
    return [
        "CREATE TABLE cluster_group (id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,"
        ' name character varying, "createdAt" timestamp with time zone NOT NULL DEFAULT now(),'
        ' "updatedAt" timestamp with time zone NOT NULL DEFAULT now())',
        'ALTER TABLE "user" ADD "clusterGroupId" uuid',
        'UPDATE "user" SET "clusterGroupId" = gen_random_uuid()',
        'INSERT INTO cluster_group (id) SELECT "clusterGroupId" FROM "user"',
        'ALTER TABLE "user" ALTER COLUMN "clusterGroupId" SET NOT NULL',
        'ALTER TABLE "user" ADD FOREIGN KEY ("clusterGroupId") REFERENCES cluster_group (id)',
        "CREATE TABLE person_group (id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,"
        ' "clusterGroupId" uuid NOT NULL REFERENCES cluster_group (id) ON DELETE CASCADE,'
        ' "createdAt" timestamp with time zone NOT NULL DEFAULT now())',
        'ALTER TABLE person ADD "personGroupId" uuid',
        'INSERT INTO person_group (id, "clusterGroupId", "createdAt") SELECT p.id,'
        ' u."clusterGroupId", p."createdAt" FROM person p JOIN "user" u ON u.id = p."ownerId"',
        'UPDATE person SET "personGroupId" = id',
        'ALTER TABLE person ALTER COLUMN "personGroupId" SET NOT NULL',
        'ALTER TABLE person ADD FOREIGN KEY ("personGroupId") REFERENCES person_group (id)'
        " ON DELETE CASCADE",
        'ALTER TABLE asset_face DROP CONSTRAINT "asset_face_personId_fkey"',
        'ALTER TABLE asset_face RENAME COLUMN "personId" TO "personGroupId"',
        'ALTER TABLE asset_face ADD FOREIGN KEY ("personGroupId") REFERENCES person_group (id)'
        " ON DELETE SET NULL",
        "ALTER TABLE person DROP CONSTRAINT person_pkey",
        "ALTER TABLE person DROP COLUMN id",
        'ALTER TABLE person ADD PRIMARY KEY ("ownerId", "personGroupId")',
    ]


@dataclass
class ImmichDatabase:
    """An Immich database being filled: ``engine`` writes rows, ``layout`` picks the schema.

    Layouts: ``plural`` (before 1.137's singular table names), ``singular`` (1.137 to 3.1) and
    ``cluster-groups`` (3.2+: people keyed by their person group).
    """

    engine: sa.Engine
    url: str
    layout: str
    upload: Path
    """Host folder of Immich's upload location (/data inside the container)."""

    @property
    def plural(self) -> bool:
        return self.layout == "plural"

    @property
    def person_column(self) -> str:
        """Return the column of ``asset_face`` that names the face's person."""
        return "personGroupId" if self.layout == "cluster-groups" else "personId"

    def table(self, role: str) -> str:
        names = {"asset": ("assets", "asset"), "face": ("asset_faces", "asset_face"),
                 "file": ("asset_files", "asset_file"), "user": ("users", "user")}  # fmt: skip
        return names[role][0 if self.plural else 1]

    def insert(self, table: str, row: dict[str, Any]) -> None:
        cols = ", ".join(f'"{c}"' for c in row)
        params = ", ".join(f":{c}" for c in row)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f'INSERT INTO "{table}" ({cols}) VALUES ({params})'), row)

    def owner(self, uid: str = IMMICH_OWNER, email: str = "admin@example.com") -> None:
        row = {"id": uid, "email": email}
        if self.layout == "cluster-groups":  # each user starts in a cluster group of their own
            with self.engine.begin() as conn:
                row["clusterGroupId"] = conn.execute(
                    sa.text("INSERT INTO cluster_group DEFAULT VALUES RETURNING id")
                ).scalar()
        self.insert(self.table("user"), row)

    def person(self, pid: str, name: str, hidden: bool = False, owner: str = IMMICH_OWNER) -> None:
        """Add a person; from 3.2 on, ``pid`` is the id of the person's group."""
        if self.layout != "cluster-groups":
            self.insert("person", {"id": pid, "ownerId": owner, "name": name,
                                   "isHidden": hidden})  # fmt: skip
            return
        with self.engine.begin() as conn:
            conn.execute(
                sa.text('INSERT INTO person_group (id, "clusterGroupId") SELECT :pid,'
                        ' "clusterGroupId" FROM "user" WHERE id = :owner ON CONFLICT DO NOTHING'),
                {"pid": pid, "owner": owner},
            )  # fmt: skip
        self.insert("person", {"personGroupId": pid, "ownerId": owner, "name": name,
                               "isHidden": hidden})  # fmt: skip

    def asset(self, i: int, p: SpecPhoto, **columns: Any) -> str:
        """Add the photo's asset (file written under the upload folder) and Jane's face."""
        aid = asset_id(i)
        write(self.upload / "library" / "admin" / p.name, p.data)
        flags = {k: columns.pop(k) for k in ("archived", "hidden") if k in columns}
        row: dict[str, Any] = {
            "id": aid, "deviceAssetId": p.basename, "ownerId": IMMICH_OWNER, "deviceId": "CLI",
            "type": "IMAGE", "originalPath": immich_path(p), "fileCreatedAt": p.taken,
            "fileModifiedAt": p.taken, "checksum": bytes.fromhex(p.sha1),
            "originalFileName": p.basename, "localDateTime": p.taken,
        }  # fmt: skip
        if self.plural:
            row["isArchived"] = flags.get("archived", False)
            row["isVisible"] = not flags.get("hidden", False)
        elif flags:
            row["visibility"] = "archive" if flags.get("archived") else "hidden"
        self.insert(self.table("asset"), {**row, **columns})
        return aid

    def face(self, fid: str, aid: str, p: SpecPhoto, box: tuple[int, int, int, int],
             person: str | None, **columns: Any) -> None:  # fmt: skip
        self.insert(self.table("face"), {"id": fid, "assetId": aid, self.person_column: person,
                                         **immich_box(p, box), **columns})  # fmt: skip


def write_immich_db(db: ImmichDatabase, photos: list[SpecPhoto]) -> dict[str, str]:
    """Add the photos for Jane; return each photo's file name under the upload folder."""
    db.owner()
    db.person(IMMICH_JANE, JANE)
    db.person(IMMICH_UNNAMED, "")
    for i, p in enumerate(photos, 1):
        aid = db.asset(i, p)
        db.face(face_id(i), aid, p, p.face, IMMICH_JANE)
        if p.other:
            db.face(face_id(100 + i), aid, p, p.other, IMMICH_UNNAMED)
    return {p.name: f"library/admin/{p.name}" for p in photos}


# -- digiKam -----------------------------------------------------------------------------------

DIGIKAM_SCHEMA = """
CREATE TABLE AlbumRoots (id INTEGER PRIMARY KEY, label TEXT, status INTEGER NOT NULL,
  type INTEGER NOT NULL, identifier TEXT, specificPath TEXT, UNIQUE(identifier, specificPath));
CREATE TABLE Albums (id INTEGER PRIMARY KEY, albumRoot INTEGER NOT NULL, relativePath TEXT NOT NULL,
  date DATE, caption TEXT, collection TEXT, icon INTEGER, UNIQUE(albumRoot, relativePath));
CREATE TABLE Images (id INTEGER PRIMARY KEY, album INTEGER, name TEXT NOT NULL,
  status INTEGER NOT NULL, category INTEGER NOT NULL, modificationDate DATETIME,
  fileSize INTEGER, uniqueHash TEXT, manualOrder INTEGER, UNIQUE (album, name));
CREATE TABLE ImageInformation (imageid INTEGER PRIMARY KEY, rating INTEGER,
  creationDate DATETIME, digitizationDate DATETIME, orientation INTEGER, width INTEGER,
  height INTEGER, format TEXT, colorDepth INTEGER, colorModel INTEGER);
CREATE TABLE Tags (id INTEGER PRIMARY KEY, pid INTEGER, name TEXT NOT NULL, icon INTEGER,
  iconkde TEXT, UNIQUE (name, pid));
CREATE TABLE TagProperties (tagid INTEGER, property TEXT, value TEXT);
CREATE TABLE ImageTags (imageid INTEGER NOT NULL, tagid INTEGER NOT NULL, UNIQUE (imageid, tagid));
CREATE TABLE ImageTagProperties (imageid INTEGER, tagid INTEGER, property TEXT, value TEXT);
"""
DIGIKAM_JANE = 12


def rect(box: tuple[int, int, int, int]) -> str:
    return f'<rect x="{box[0]}" y="{box[1]}" width="{box[2] - box[0]}" height="{box[3] - box[1]}"/>'


def write_digikam(db_path: Path, collection: Path, photos: list[SpecPhoto]) -> dict[str, str]:
    """Write digikam4.db for ``collection`` (one album root) and copy the photos into it."""
    with sqlite3.connect(db_path) as conn:
        conn.executescript(DIGIKAM_SCHEMA)
        conn.execute(
            "INSERT INTO AlbumRoots VALUES (1, 'Pictures', 0, 1, ?, '/')",
            (f"volumeid:?path={collection}",),
        )
        conn.executemany("INSERT INTO Tags (id, pid, name) VALUES (?, ?, ?)", [
            (1, 0, "People"), (11, 1, "Unknown"), (DIGIKAM_JANE, 1, JANE), (13, 1, "Max"),
        ])  # fmt: skip
        conn.executemany("INSERT INTO TagProperties VALUES (?, ?, ?)", [
            (11, "person", ""), (11, "unknownPerson", ""), (DIGIKAM_JANE, "person", JANE),
            (DIGIKAM_JANE, "kfaceId", "1"), (13, "person", "Max"),
        ])  # fmt: skip
        albums: dict[str, int] = {}
        for i, p in enumerate(photos, 1):
            write(collection / p.name, p.data)
            folder = "/" + p.name.rsplit("/", 1)[0] if "/" in p.name else "/"
            album = albums.setdefault(folder, len(albums) + 1)
            conn.execute("INSERT OR IGNORE INTO Albums (id, albumRoot, relativePath) VALUES"
                         " (?, 1, ?)", (album, folder))  # fmt: skip
            conn.execute("INSERT INTO Images VALUES (?, ?, ?, 1, 1, NULL, ?, 'x', NULL)",
                         (i, album, p.basename, len(p.data)))  # fmt: skip
            # ImageInformation holds the size before rotation, as digiKam's loaders read it.
            conn.execute("INSERT INTO ImageInformation (imageid, creationDate, orientation, width,"
                         " height, format) VALUES (?, ?, ?, ?, ?, 'JPG')",
                         (i, p.taken.isoformat(), p.orientation, *p.stored_size))  # fmt: skip
            conn.execute("INSERT INTO ImageTags VALUES (?, ?)", (i, DIGIKAM_JANE))
            conn.execute("INSERT INTO ImageTagProperties VALUES (?, ?, 'tagRegion', ?)",
                         (i, DIGIKAM_JANE, rect(p.face)))  # fmt: skip
            if p.other:
                conn.execute("INSERT INTO ImageTagProperties VALUES (?, 11, 'autodetectedFace',"
                             " ?)", (i, rect(p.other)))  # fmt: skip
    return {p.name: p.name for p in photos}


# -- XMP regions -------------------------------------------------------------------------------

XMP_HEAD = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 6.0.0">\n'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
)
XMP_TAIL = '</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>'
MWG_NS = (
    'xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"'
    ' xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"'
    ' xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#"'
    ' xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
)


def mwg_packet(regions: list[tuple[str, RelBox]], applied: tuple[int, int] | None,
               orientation: int | None = None, creator: str = "Adobe Lightroom") -> bytes:  # fmt: skip
    """Return an XMP packet with MWG face regions (``RelBox`` top-left, written centre-based)."""
    items = "".join(
        '<rdf:li><rdf:Description mwg-rs:Type="Face"'
        + (f' mwg-rs:Name="{name}"' if name else "")
        + f'><mwg-rs:Area stArea:x="{b.x + b.w / 2:.6f}" stArea:y="{b.y + b.h / 2:.6f}"'
        f' stArea:w="{b.w:.6f}" stArea:h="{b.h:.6f}" stArea:unit="normalized"/>'
        "</rdf:Description></rdf:li>"
        for name, b in regions
    )
    dims = (
        f'<mwg-rs:AppliedToDimensions stDim:w="{applied[0]}" stDim:h="{applied[1]}"'
        ' stDim:unit="pixel"/>'
        if applied
        else ""
    )
    orient = f' tiff:Orientation="{orientation}"' if orientation else ""
    body = (
        f'<rdf:Description rdf:about="" {MWG_NS} xmp:CreatorTool="{creator}"{orient}>'
        f'<mwg-rs:Regions rdf:parseType="Resource">{dims}'
        f"<mwg-rs:RegionList><rdf:Bag>{items}</rdf:Bag></mwg-rs:RegionList>"
        "</mwg-rs:Regions></rdf:Description>\n"
    )
    return (XMP_HEAD + body + XMP_TAIL).encode()


def mp_packet(regions: list[tuple[str, RelBox]]) -> bytes:
    """Return an XMP packet with Microsoft Photo regions (top-left rectangles), element form."""
    items = "".join(
        "<rdf:li><rdf:Description>"
        f"<MPReg:Rectangle>{b.x:.6f}, {b.y:.6f}, {b.w:.6f}, {b.h:.6f}</MPReg:Rectangle>"
        f"<MPReg:PersonDisplayName>{name}</MPReg:PersonDisplayName>"
        "</rdf:Description></rdf:li>"
        for name, b in regions
    )
    body = (
        '<rdf:Description rdf:about="" xmlns:MP="http://ns.microsoft.com/photo/1.2/"'
        ' xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#"'
        ' xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#">'
        '<MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag>'
        f"{items}</rdf:Bag></MPRI:Regions></MP:RegionInfo></rdf:Description>\n"
    )
    return (XMP_HEAD + body + XMP_TAIL).encode()


def mwg_stored_packet(p: SpecPhoto) -> bytes:
    """Return the MWG packet a guideline-following writer makes: stored frame, stored size."""
    regions = [(JANE, stored_box(p, p.face))]
    if p.other:
        regions.append(("", stored_box(p, p.other)))
    return mwg_packet(regions, p.stored_size)


def write_xmp_folder(folder: Path, photos: list[SpecPhoto]) -> dict[str, str]:
    """Copy the photos into ``folder`` with an ``IMG.jpg.xmp`` sidecar each."""
    for p in photos:
        write(folder / p.name, p.data)
        (folder / (p.name + ".xmp")).write_bytes(mwg_stored_packet(p))
    return {p.name: p.name for p in photos}


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
