"""Immich over its REST API (``x-api-key``), for users who do not open its database.

People come from ``/api/people``, a person's assets from ``POST /api/search/metadata``, their
faces from ``/api/faces?id=<asset>``. Boxes are pixels of the oriented preview Immich measured
(``imageWidth`` x ``imageHeight``); as fractions they hold for any oriented rendition of the same
picture. The API maps boxes through Immich's non-destructive edits (2026+), so an edited asset is
downloaded edited (``original?edited=true``) and an unedited one as its original: boxes and file
always come from the same side. RAW and video assets are cropped from Immich's preview JPEG.

Downloads go to a cache reused between runs. A file that cannot be downloaded whole is logged and
its faces are still yielded, so the crop stage reports them as ``missing_file``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from faceset.errors import SourceError
from faceset.model import Face, Person, RelBox
from faceset.sources import regions, values
from faceset.sources.api_client import ApiClient, NotFound, Refused, Unauthorized
from faceset.sources.download_cache import DownloadCache
from faceset.sources.immich_db import DECODABLE, aspect_matches
from faceset.sources.roots import UnsafePath

log = logging.getLogger(__name__)

PAGE = 1000
# /api/server/version, /api/people and /api/assets/{id}/original arrived with the 1.106 API.
OLDEST = (1, 106)
# Assets gained a visibility (timeline, archive, hidden, locked) in 1.133, replacing isArchived.
VISIBILITY = (1, 133)
AUTH_HINT = "check the API key (Immich: Account Settings > API Keys; needs person.read,"
AUTH_HINT += " asset.read, asset.download and face.read)"

Asset = dict[str, Any]


class ImmichAPI:
    """People and faces from an Immich server; downloads go under ``cache_folder``."""

    name = "immich"

    def __init__(
        self,
        url: str,
        api_key: str,
        cache_folder: Path,
        *,
        timeout: float = 30.0,
        ca_file: Path | None = None,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        base = url.rstrip("/")
        # IMMICH_INSTANCE_URL, as Immich's own CLI takes it, already ends in /api.
        base = base if base.endswith("/api") else base + "/api"
        self.client = ApiClient(
            base,
            {"x-api-key": api_key, "Accept": "application/json"},
            service="Immich",
            auth_hint=AUTH_HINT,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            ca_file=ca_file,
        )
        self.roots = {"/": cache_folder}
        self.cache = DownloadCache(cache_folder)
        self.version = self._version()
        # Any call that needs the key: a wrong key stops here, with one line.
        self.client.get_json("people", {"withHidden": "true", "page": 1, "size": 1})
        self._assets: dict[tuple[str, bool], list[Asset]] = {}

    def close(self) -> None:
        self._assets.clear()

    def _version(self) -> tuple[int, int, int]:
        try:
            v = self.client.get_json("server/version")
        except Unauthorized:
            # Immich answers this without credentials; something else is at this address.
            raise SourceError(
                f"{self.client.where} is not an Immich server (it wants a login for"
                " /api/server/version), or a proxy in front of it needs its own"
            ) from None
        except NotFound:
            try:
                old = self.client.get_json("server-info/version")
            except NotFound:
                raise SourceError(
                    f"{self.client.where} is not an Immich server (no /api/server/version)"
                ) from None
            v = old if isinstance(old, dict) else {}
        if not isinstance(v, dict):
            raise SourceError(f"{self.client.where} sent an unexpected version")
        version = tuple(values.integer(v.get(k)) for k in ("major", "minor", "patch"))
        if version[:2] < OLDEST:
            raise SourceError(
                f"Immich {'.'.join(map(str, version))} at {self.client.base_url} is too old;"
                f" faceset needs Immich {'.'.join(map(str, OLDEST))} or newer"
            )
        return version[0], version[1], version[2]

    def people(self) -> list[Person]:
        """Return every named person with their asset count; unnamed clusters are left out."""
        people = []
        page = 1
        while True:
            data = self.client.get_json(
                "people", {"withHidden": "true", "page": page, "size": PAGE}
            )
            if not isinstance(data, dict) or not isinstance(data.get("people"), list):
                raise SourceError(f"{self.client.where} sent an unexpected list of people")
            for p in data["people"]:
                name = values.text(p.get("name")).strip()
                if name:
                    people.append(
                        Person(
                            uid=values.text(p.get("id")),
                            name=name,
                            hidden=values.flag(p.get("isHidden")),
                            faces=self._asset_count(values.text(p.get("id"))),
                        )
                    )
            if not data.get("hasNextPage"):
                break
            page += 1
        return sorted(people, key=lambda p: (-p.faces, p.name.casefold()))

    def _asset_count(self, uid: str) -> int:
        try:
            stats = self.client.get_json(f"people/{uid}/statistics")
        except (NotFound, Refused):
            return 0
        return values.integer(stats.get("assets")) if isinstance(stats, dict) else 0

    def count_faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> int:
        """Return the person's asset count (one face each, almost always; downloads nothing)."""
        _refuse_confirmed_only(confirmed_only)
        return len(self._person_assets(person.uid, include_archived))

    def faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> Iterator[Face]:
        """Yield the person's faces, newest asset first, each file downloaded into the cache."""
        _refuse_confirmed_only(confirmed_only)
        for asset in self._person_assets(person.uid, include_archived):
            asset_id = values.text(asset.get("id"))
            try:
                listed = self.client.get_json("faces", {"id": asset_id})
            except NotFound:
                log.warning("Immich asset %s vanished while reading; skipped", asset_id)
                continue
            listed = [f for f in listed if isinstance(f, dict)] if isinstance(listed, list) else []
            boxes = {values.text(f.get("id")): _box(f) for f in listed}
            for f in listed:
                owner = f.get("person") or {}
                if values.text(owner.get("id")) != person.uid:
                    continue
                face_id = values.text(f.get("id"))
                others = tuple(b for i, b in boxes.items() if i != face_id and b is not None)
                face = self._face(asset, f, person, others)
                if face is not None:
                    yield face

    def _person_assets(self, uid: str, include_archived: bool) -> list[Asset]:
        key = (uid, include_archived)
        if key not in self._assets:
            found = {values.text(a.get("id")): a for a in self._search({"personIds": [uid]})}
            if include_archived:
                for a in self._archived(uid):
                    found.setdefault(values.text(a.get("id")), a)
            assets = [a for a in found.values() if _usable(a, include_archived)]
            assets.sort(key=lambda a: values.text(a.get("fileCreatedAt")), reverse=True)
            self._assets[key] = assets
        return self._assets[key]

    def _archived(self, uid: str) -> list[Asset]:
        if self.version[:2] >= VISIBILITY:
            return self._search({"personIds": [uid], "visibility": "archive"})
        # Before 1.133 archive was a flag, not a visibility; current servers refuse the flag.
        return self._search({"personIds": [uid], "withArchived": True})

    def _search(self, query: Mapping[str, Any]) -> list[Asset]:
        """Return every asset a metadata search finds, following ``nextPage``."""
        assets: list[Asset] = []
        page = 1
        while page:
            data = self.client.post_json("search/metadata", {**query, "page": page, "size": PAGE})
            block = data.get("assets") if isinstance(data, dict) else None
            if not isinstance(block, dict) or not isinstance(block.get("items"), list):
                raise SourceError(f"{self.client.where} sent an unexpected search result")
            assets += [a for a in block["items"] if isinstance(a, dict)]
            following = values.integer(block.get("nextPage"), 0)
            page = following if following > page else 0  # never loop on a stuck nextPage
        return assets

    def _face(
        self, asset: Asset, f: Mapping[str, Any], person: Person, others: tuple[RelBox, ...]
    ) -> Face | None:
        width, height = values.integer(f.get("imageWidth")), values.integer(f.get("imageHeight"))
        face_id = values.text(f.get("id"))
        box = _box(f)
        if box is None:
            log.warning("Immich face %s has no image size; skipped", face_id)
            return None
        name, path, params, sha1 = _download_plan(asset)
        local = None
        try:
            local = self.cache.fetch(
                name,
                sha1,
                lambda tmp: self.client.download(path, params, tmp),
                what=f"{values.text(asset.get('originalFileName'))} from {self.client.where}",
            )
        except UnsafePath:
            pass  # cannot happen with names built from ids; the pipeline would refuse it
        if local is not None and aspect_matches(local, width, height) is False:
            log.warning(
                "%s: Immich measured face %s on a %dx%d image of another shape; skipped",
                name, face_id, width, height,
            )  # fmt: skip
            return None
        asset_id = values.text(asset.get("id"))
        return Face(
            marker_uid=face_id,
            file_uid=asset_id,
            photo_uid=asset_id,
            subject_uid=person.uid,
            subject_name=person.name,
            root="/",
            file_name=name,
            box=box,
            file_hash=sha1,
            file_type=PurePosixPath(name).suffix.lstrip(".").lower(),
            # Immich's detector boxes are not pixel squares.
            detected=False,
            taken_at=values.timestamp(asset.get("fileCreatedAt")),
            others=others,
        )


def _box(f: Mapping[str, Any]) -> RelBox | None:
    """Return an Immich face's box relative to the oriented image; None without a size."""
    width, height = values.integer(f.get("imageWidth")), values.integer(f.get("imageHeight"))
    if width <= 0 or height <= 0:
        return None
    return regions.corner_box(
        values.coordinate(f.get("boundingBoxX1")),
        values.coordinate(f.get("boundingBoxY1")),
        values.coordinate(f.get("boundingBoxX2")),
        values.coordinate(f.get("boundingBoxY2")),
        width,
        height,
    )


def _usable(asset: Mapping[str, Any], include_archived: bool) -> bool:
    """Return whether an asset is neither trashed, offline nor hidden (nor archived, unless asked)."""
    visibility = values.text(asset.get("visibility"))
    if values.flag(asset.get("isTrashed")) or values.flag(asset.get("isOffline")):
        return False
    if visibility == "hidden":
        return False  # the video half of a live photo
    archived = values.flag(asset.get("isArchived")) or visibility in ("archive", "locked")
    return include_archived or not archived


def _download_plan(asset: Mapping[str, Any]) -> tuple[str, str, dict[str, str], str]:
    """Return (cache name, API path, query, sha1 or '') of the file to crop for an asset."""
    asset_id = values.text(asset.get("id"))
    original = values.text(asset.get("originalFileName"))
    suffix = PurePosixPath(original.lower()).suffix
    # Files whose bytes no hash vouches for carry a version tag in their name instead, so an
    # asset edited or re-rendered on the server is fetched again.
    tag = hashlib.sha1(
        f"{asset.get('checksum')}|{asset.get('updatedAt')}".encode(), usedforsecurity=False
    ).hexdigest()[:10]
    shard = asset_id[:2]
    if values.text(asset.get("type")).upper() != "IMAGE" or suffix not in DECODABLE:
        return (
            f"previews/{shard}/{asset_id}-{tag}",
            f"assets/{asset_id}/thumbnail",
            {"size": "preview"},
            "",
        )
    if values.flag(asset.get("isEdited")):
        return (
            f"edited/{shard}/{asset_id}-{tag}{suffix}",
            f"assets/{asset_id}/original",
            {"edited": "true"},
            "",
        )
    sha1 = ""
    # checksum is the base64 SHA-1 of the original; external libraries once hashed the path.
    # Since 1.106 (OLDEST) uploads have no libraryId, so it alone tells an external file.
    if not asset.get("libraryId"):
        try:
            sha1 = base64.b64decode(values.text(asset.get("checksum")), validate=True).hex()
        except (binascii.Error, ValueError):
            sha1 = ""
        if len(sha1) != 40:
            sha1 = ""
    name = (
        f"originals/{shard}/{asset_id}{suffix}"
        if sha1
        else f"originals/{shard}/{asset_id}-{tag}{suffix}"
    )
    return name, f"assets/{asset_id}/original", {}, sha1


def _refuse_confirmed_only(confirmed_only: bool) -> None:
    if confirmed_only:
        raise SourceError(
            "Immich does not record which faces you confirmed; leave out --confirmed-only"
        )
