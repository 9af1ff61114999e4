"""PhotoPrism over its REST API, against a local server shaped like PhotoPrism's."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from faceset import config, pipeline
from faceset.errors import ConfigError, SourceError
from faceset.sources import download_cache, open_source, photoprism_api
from faceset.sources.config import LibraryConfig
from faceset.sources.photoprism_api import PhotoPrismAPI
from sources.fake_servers import Fault, PhotoPrismServer
from sources.library_spec import JANE, SpecPhoto

TOKEN = PhotoPrismServer.TOKEN


def source(server: PhotoPrismServer, cache: Path, token: str = TOKEN, **kw: Any) -> PhotoPrismAPI:
    kw = {"timeout": 1.0, "backoff": 0.01, **kw}
    return PhotoPrismAPI(server.url, token, cache, **kw)


def export(server: PhotoPrismServer, tmp_path: Path, **library: Any) -> pipeline.ExportResult:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    cfg = config.load(
        None,
        {
            "library": {"source": "photoprism-api", "url": server.url, "token_file": token,
                        "cache": tmp_path / "cache", "timeout": 1.0, **library},
            "crop": {"size": 256},
            "export": {"out": tmp_path / "out", "workers": 1},
        },
        environ={},
    )  # fmt: skip
    return pipeline.export(cfg, JANE)


def report(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "out" / "report.json").read_text())  # type: ignore[no-any-return]


def test_people_come_from_the_subjects_api(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    people = source(photoprism_server, tmp_path).people()

    assert [(p.name, p.faces, p.hidden) for p in people] == [(JANE, 4, False), ("Max", 0, True)]


def test_photos_split_across_pages_are_merged(
    photoprism_server: PhotoPrismServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three files a page: a photo's JPEG and its sidecar land on different pages.
    monkeypatch.setattr(photoprism_api, "PAGE", 3)
    src = source(photoprism_server, tmp_path)
    jane = src.people()[0]

    faces = list(src.faces(jane))

    assert sorted(f.file_name for f in faces) == sorted(p for p in [
        "2024/upright.jpg", "2024/rot6.jpg", "2023/rot3.jpg", "2023/trans5.jpg"])  # fmt: skip
    assert len({f.marker_uid for f in faces}) == 4
    assert len(photoprism_server.calls("/api/v1/photos")) == 4  # 8 files: 3 + 3 + 2, then empty


def test_faces_carry_the_other_faces_of_their_file(
    photoprism_server: PhotoPrismServer, tmp_path: Path, spec: list[SpecPhoto]
) -> None:
    src = source(photoprism_server, tmp_path)

    upright = next(f for f in src.faces(src.people()[0]) if f.file_name == "2024/upright.jpg")

    assert upright.others == (spec[0].other_box,)
    assert upright.box == spec[0].box
    assert upright.file_hash == spec[0].sha1


def test_export_downloads_once_and_reuses_the_cache(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    first = export(photoprism_server, tmp_path)
    downloads = len(photoprism_server.calls("/api/v1/dl/"))
    second = export(photoprism_server, tmp_path)

    assert first.summary.written == 4
    assert downloads == 4
    assert second.summary.kept == 4
    assert len(photoprism_server.calls("/api/v1/dl/")) == 4


def test_a_re_run_reads_no_cached_photo_to_re_hash_it(
    photoprism_server: PhotoPrismServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export(photoprism_server, tmp_path)
    hashed: list[Path] = []
    real = download_cache.sha1_of
    monkeypatch.setattr(download_cache, "sha1_of", lambda path: hashed.append(path) or real(path))

    second = export(photoprism_server, tmp_path)
    cached = next((tmp_path / "cache").rglob("upright.jpg"))
    os.utime(cached, ns=(1, 1))  # touched (a restore from backup): verified again, once
    third = export(photoprism_server, tmp_path)

    assert (second.summary.kept, third.summary.kept) == (4, 4)
    assert hashed == [cached]
    assert len(photoprism_server.calls("/api/v1/dl/")) == 4


def test_a_corrupted_cache_file_is_downloaded_again(
    photoprism_server: PhotoPrismServer, tmp_path: Path, spec: list[SpecPhoto]
) -> None:
    export(photoprism_server, tmp_path)
    cached = next((tmp_path / "cache").rglob("upright.jpg"))
    cached.write_bytes(b"not the photo")

    result = export(photoprism_server, tmp_path)

    assert result.summary.kept == 4
    assert len(photoprism_server.calls("/api/v1/dl/")) == 5
    assert cached.read_bytes() == spec[0].data


def test_the_export_never_writes(photoprism_server: PhotoPrismServer, tmp_path: Path) -> None:
    export(photoprism_server, tmp_path)

    assert {r.method for r in photoprism_server.requests} == {"GET"}
    assert all(
        r.headers.get("authorization") == f"Bearer {TOKEN}"
        for r in photoprism_server.requests
        if not r.path.startswith("/api/v1/dl/")
    )


def test_rejections_are_written_back_only_when_asked(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match="read-only"):
        source(photoprism_server, tmp_path).unassign("m000000000000001")
    assert not photoprism_server.calls(method="DELETE")

    source(photoprism_server, tmp_path, allow_writes=True).unassign("m000000000000001")

    [call] = photoprism_server.calls(method="DELETE")
    assert call.path == "/api/v1/markers/m000000000000001/subject"


def test_a_marker_uid_cannot_reach_another_endpoint(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match="not a PhotoPrism marker UID"):
        source(photoprism_server, tmp_path, allow_writes=True).unassign("../photos/x")


def test_a_wrong_token_is_one_clear_error(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match=r"refused the credentials \(401\); check the app pass"):
        source(photoprism_server, tmp_path, token="wrong")


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    server = PhotoPrismServer({})
    server.close()  # nothing listens on its port now

    with pytest.raises(SourceError, match=r"^cannot reach PhotoPrism at http://127\.0\.0\.1"):
        source(server, tmp_path)


def test_a_server_without_the_people_api_is_unsupported(tmp_path: Path) -> None:
    server = PhotoPrismServer({"photos": [], "blobs": {}})
    try:
        with pytest.raises(SourceError, match="older than 2021 is not supported"):
            source(server, tmp_path).people()
    finally:
        server.close()


def test_an_older_server_gives_the_download_token_with_the_photos(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    photoprism_server.session = False  # no GET /api/v1/session

    assert export(photoprism_server, tmp_path).summary.written == 4


def test_busy_and_slow_answers_are_retried(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    photoprism_server.fail("/api/v1/subjects", Fault(status=503), Fault(delay=1.3))
    photoprism_server.fail("/api/v1/photos", Fault(status=502))

    result = export(photoprism_server, tmp_path)

    assert result.summary.written == 4
    assert len(photoprism_server.calls("/api/v1/subjects")) == 3


def test_a_server_that_stays_down_stops_the_run(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    photoprism_server.fail("/api/v1/subjects", *[Fault(status=500)] * 4)

    with pytest.raises(SourceError, match=r"failed on subjects: HTTP 500 after 4 tries"):
        source(photoprism_server, tmp_path).people()


@pytest.mark.parametrize(
    ("faults", "written"),
    [
        ([Fault(status=500), Fault(truncate=True)], 4),  # retried until whole
        ([Fault(status=404)], 3),
        ([Fault(status=500)] * 4, 3),
        ([Fault(truncate=True)] * 4, 3),
        ([Fault(body=b"other bytes")], 3),  # hash mismatch
        ([Fault(delay=1.3)] * 4, 3),
    ],
    ids=["retried", "404", "500", "truncated", "wrong-hash", "slow"],
)
def test_a_failed_download_is_reported_not_fatal(
    photoprism_server: PhotoPrismServer,
    tmp_path: Path,
    spec: list[SpecPhoto],
    faults: list[Fault],
    written: int,
) -> None:
    photoprism_server.fail(f"/api/v1/dl/{spec[1].sha1}", *faults)

    result = export(photoprism_server, tmp_path)

    assert result.summary.written == written
    if written == 3:
        [problem] = report(tmp_path)["problems"]
        assert problem["reason"] == "missing_file"
        assert problem["source"] == {"root": "originals", "path": "2024/rot6.jpg"}
        assert not list((tmp_path / "cache").rglob("*.part"))


def test_https_with_the_servers_ca_certificate(
    spec: list[SpecPhoto], certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    from sources.library_spec import photoprism_api_state

    server = PhotoPrismServer(photoprism_api_state(spec), tls=certificate)
    try:
        with pytest.raises(SourceError, match="cannot verify the HTTPS certificate"):
            source(server, tmp_path)

        people = source(server, tmp_path, ca_file=certificate[0]).people()
    finally:
        server.close()

    assert people[0].name == JANE
    assert server.url.startswith("https://")


def test_the_token_comes_from_a_file_or_the_environment(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    library = LibraryConfig(source="photoprism-api", url=photoprism_server.url, cache=tmp_path)

    src = open_source(library, {"FACESET_PHOTOPRISM_TOKEN": TOKEN})

    assert isinstance(src, PhotoPrismAPI)
    with pytest.raises(
        ConfigError, match="pass --token-file FILE, or set FACESET_PHOTOPRISM_TOKEN"
    ):
        open_source(library, {})
    with pytest.raises(ConfigError, match="no server address for photoprism-api"):
        open_source(LibraryConfig(source="photoprism-api"), {"FACESET_TOKEN": TOKEN})


def test_a_redirect_is_not_followed_with_the_token(
    photoprism_server: PhotoPrismServer, tmp_path: Path
) -> None:
    from sources.fake_servers import Reply

    photoprism_server.handle = lambda r: Reply(  # type: ignore[method-assign]
        301, b"", {"Location": "https://photos.example.com/api/v1/session"}
    )

    with pytest.raises(SourceError, match=r"redirects to https://photos\.example\.com/api/v1/ses"):
        source(photoprism_server, tmp_path)
    assert len(photoprism_server.requests) == 1
