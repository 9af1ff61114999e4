"""open_source() picks the library named by `source`, and says what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceset.errors import ConfigError
from faceset.sources import open_source
from faceset.sources.config import LibraryConfig
from faceset.sources.download_cache import server_folder
from faceset.sources.immich_api import ImmichAPI
from faceset.sources.photoprism_api import PhotoPrismAPI
from faceset.sources.xmp import XmpFolder
from sources.fake_servers import ImmichServer, PhotoPrismServer


@pytest.mark.parametrize(
    ("library", "message"),
    [
        ({"source": "xmp"}, "no photo folder: pass --originals DIR"),
        ({"source": "xmp", "originals": "/nonexistent/photos"}, "is not a folder"),
        ({"source": "digikam"}, "no digikam database given: pass --db"),
        ({"source": "immich"}, "no server address for immich: pass --url"),
        ({"source": "photoprism"}, "no library given: pass --db"),
    ],
)
def test_an_incomplete_library_is_one_clear_error(library: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_source(LibraryConfig.model_validate(library), {})


def test_a_token_file_that_cannot_be_read(tmp_path: Path) -> None:
    library = LibraryConfig(source="immich", url="http://127.0.0.1:9", token_file=tmp_path / "x")

    with pytest.raises(ConfigError, match="cannot read the token file"):
        open_source(library, {})


def test_immich_takes_its_own_cli_variables(immich_server: ImmichServer, tmp_path: Path) -> None:
    env = {"IMMICH_INSTANCE_URL": immich_server.url + "/api", "IMMICH_API_KEY": ImmichServer.KEY}

    src = open_source(LibraryConfig(source="immich", cache=tmp_path), env)

    assert isinstance(src, ImmichAPI)
    assert src.roots["/"] == server_folder(tmp_path, "immich", env["IMMICH_INSTANCE_URL"])


def test_every_source_has_an_originals_root(tmp_path: Path) -> None:
    # The pipeline needs root '/': API sources download into their cache folder.
    for kind in ("photoprism-api", "immich"):
        roots = LibraryConfig.model_validate(
            {"source": kind, "url": "https://photos.lan:2342", "cache": tmp_path}
        ).roots()
        assert roots["/"].is_relative_to(tmp_path / kind / "photos.lan_2342")
    assert LibraryConfig(source="digikam").roots() == {"/": Path("/")}
    assert LibraryConfig(source="xmp", originals=tmp_path).roots() == {"/": tmp_path}


def test_xmp_opens_a_folder(tmp_path: Path) -> None:
    assert isinstance(open_source(LibraryConfig(source="xmp", originals=tmp_path), {}), XmpFolder)


def test_only_photoprisms_api_can_be_opened_for_writing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="faceset writes nothing to xmp"):
        open_source(LibraryConfig(source="xmp", originals=tmp_path), {}, allow_writes=True)


def test_feedback_to_photoprism_goes_through_open_source(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    library = LibraryConfig(source="photoprism-api", url=photoprism_server.url, cache=tmp_path)
    env = {"FACESET_TOKEN": PhotoPrismServer.TOKEN}

    src = open_source(library, env, allow_writes=True)
    assert isinstance(src, PhotoPrismAPI)
    src.unassign("m000000000000001")

    assert [r.method for r in photoprism_server.calls("/api/v1/markers/")] == ["DELETE"]
