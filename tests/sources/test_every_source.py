"""The same small library exported through every source gives the same crops.

The reference is the PhotoPrism database path. Each other source reads the same photos from its
own storage, in its own coordinates (Immich: corners on a half-size preview; digiKam: pixels of
the oriented image; XMP: centre-based boxes of the stored image), and must cut the same windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factories import Database, make_library
from sources.exports import assert_face_upright, assert_same_crops, by_photo, run_export
from sources.fake_servers import ImmichServer, PhotoPrismServer
from sources.library_spec import (
    ImmichDatabase,
    SpecPhoto,
    asset_id,
    write_digikam,
    write_immich_db,
    write_photoprism_db,
    write_xmp_folder,
)


def test_every_source_crops_the_same_faces(
    spec: list[SpecPhoto],
    sqlite_db: Database,
    current_immich_db: ImmichDatabase,
    photoprism_server: PhotoPrismServer,
    immich_server: ImmichServer,
    tmp_path: Path,
) -> None:
    by_basename = {p.basename: p.name for p in spec}

    def base(path: str) -> str:
        return by_basename[path.rsplit("/", 1)[-1]]

    lib = make_library(sqlite_db.engine, tmp_path / "photoprism")
    write_photoprism_db(lib, spec)
    ref_out = tmp_path / "out-photoprism"
    run_export({"db": sqlite_db.url, "originals": lib.originals, "storage": lib.storage}, ref_out)
    reference = by_photo(ref_out, base)
    assert len(reference) == len(spec)
    for rec in reference.values():
        assert_face_upright(ref_out, rec)

    token = tmp_path / "token"
    outputs: dict[str, tuple[dict[str, Any], Path]] = {}

    token.write_text(PhotoPrismServer.TOKEN + "\n")
    out = tmp_path / "out-photoprism-api"
    run_export({"source": "photoprism-api", "url": photoprism_server.url, "token_file": token,
                "cache": tmp_path / "cache"}, out)  # fmt: skip
    outputs["photoprism-api"] = (by_photo(out, base), out)

    key = tmp_path / "immich-key"
    key.write_text(ImmichServer.KEY)
    ids = {asset_id(i): p.name for i, p in enumerate(spec, 1)}
    out = tmp_path / "out-immich"
    run_export({"source": "immich", "url": immich_server.url, "token_file": key,
                "cache": tmp_path / "cache"}, out)  # fmt: skip
    outputs["immich"] = (by_photo(out, lambda path: ids[path.rsplit("/", 1)[-1][:36]]), out)

    write_immich_db(current_immich_db, spec)
    out = tmp_path / "out-immich-db"
    run_export(
        {"source": "immich-db", "db": current_immich_db.url, "originals": current_immich_db.upload},
        out,
    )
    outputs["immich-db"] = (by_photo(out, base), out)

    collection = tmp_path / "Pictures"
    write_digikam(tmp_path / "digikam4.db", collection, spec)
    out = tmp_path / "out-digikam"
    run_export({"source": "digikam", "db": f"sqlite:///{tmp_path / 'digikam4.db'}"}, out)
    outputs["digikam"] = (by_photo(out, base), out)

    write_xmp_folder(tmp_path / "xmp", spec)
    out = tmp_path / "out-xmp"
    run_export({"source": "xmp", "originals": tmp_path / "xmp"}, out)
    outputs["xmp"] = (by_photo(out, base), out)

    for name, (found, out) in outputs.items():
        assert len(found) == len(spec), name
        assert_same_crops(reference, ref_out, found, out)
