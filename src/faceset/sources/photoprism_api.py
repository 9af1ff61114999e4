"""PhotoPrism over its REST API, for users who cannot reach the index database.

Reads people (``/api/v1/subjects``), pages through a person's photos with their files and
markers (``/api/v1/photos?merged=true&q=subject:<uid>``) and downloads each marker's own file by
its hash (``/api/v1/dl/<hash>?t=<download token>``) into a cache reused between runs. Markers
have the same meaning as in the index: relative boxes of the marker's file, oriented. Nothing
is ever written unless :meth:`PhotoPrismAPI.unassign` is called on a source opened with
``allow_writes=True``.

A file that cannot be downloaded whole (404, 5xx after retries, cut short, wrong hash) is logged
and its faces are still yielded: the crop stage then reports them as ``missing_file``, so the
report counts every face the library holds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from faceset import redaction
from faceset.errors import SourceError
from faceset.model import Face, Person, RelBox
from faceset.sources import values
from faceset.sources.api_client import ApiClient, Forbidden, NotFound
from faceset.sources.config import PHOTOPRISM_API_ROOTS
from faceset.sources.download_cache import DownloadCache
from faceset.sources.roots import UnsafePath

log = logging.getLogger(__name__)

# `count` limits files, not photos; any page size works, this one keeps responses small.
PAGE = 500
_UID = re.compile(r"^[a-z0-9]{16}$")
AUTH_HINT = (
    "check the app password or access token (PhotoPrism: Settings > Account > Apps and Devices)"
)

Photo = dict[str, Any]


class PhotoPrismAPI:
    """People and faces from a PhotoPrism server; downloads go under ``cache_folder``."""

    name = "photoprism-api"

    def __init__(
        self,
        url: str,
        token: str,
        cache_folder: Path,
        *,
        timeout: float = 30.0,
        ca_file: Path | None = None,
        allow_writes: bool = False,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.client = ApiClient(
            url.rstrip("/") + "/api/v1",
            {"Authorization": f"Bearer {token}", "Accept": "application/json"},
            service="PhotoPrism",
            auth_hint=AUTH_HINT,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            ca_file=ca_file,
        )
        self.allow_writes = allow_writes
        self.roots = {root: cache_folder / sub for root, sub in PHOTOPRISM_API_ROOTS.items()}
        self._caches = {root: DownloadCache(path) for root, path in self.roots.items()}
        self._listings: dict[tuple[str, bool], list[Photo]] = {}
        self._fetched: set[tuple[str, str]] = set()
        self.version, self.download_token = self._session()

    def close(self) -> None:
        self._listings.clear()

    def _session(self) -> tuple[str, str]:
        """Return the server version and download token; a 401 here stops the run."""
        try:
            session = self.client.get_json("session")
        except (NotFound, Forbidden):
            # Older servers have no GET /session, and an app password's scope may not cover it;
            # the download token then comes with the photo listing. A 401 still stops here.
            return "", ""
        config = session.get("config", {}) if isinstance(session, dict) else {}
        if not isinstance(config, dict):
            config = {}
        download_token = values.text(config.get("downloadToken"))
        redaction.remember(download_token)  # it opens every original, as the token does
        return values.text(config.get("version")), download_token

    def people(self) -> list[Person]:
        """Return every person (subject of type person) with PhotoPrism's file count."""
        people = []
        offset = 0
        while True:
            try:
                page = self.client.get_json(
                    "subjects", {"count": PAGE, "offset": offset, "type": "person"}
                )
            except NotFound:
                raise SourceError(
                    f"{self.client.where} has no people API (/api/v1/subjects); PhotoPrism"
                    " older than 2021 is not supported"
                ) from None
            if not isinstance(page, list):
                raise SourceError(f"{self.client.where} sent an unexpected list of people")
            for s in page:
                if isinstance(s, dict) and values.text(s.get("Type")) in ("person", ""):
                    people.append(_person(s))
            if len(page) < PAGE:
                break
            offset += PAGE
        return sorted(people, key=lambda p: (-p.faces, p.name.casefold()))

    def count_faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> int:
        """Return how many faces :meth:`faces` will yield (downloads nothing)."""
        return sum(
            1
            for photo in self._photos(person, include_archived)
            for _ in self._markers(photo, person, confirmed_only)
        )

    def faces(
        self, person: Person, *, confirmed_only: bool = False, include_archived: bool = False
    ) -> Iterator[Face]:
        """Yield the person's valid faces, downloading each file into the cache first."""
        for photo in self._photos(person, include_archived):
            for file, marker in self._markers(photo, person, confirmed_only):
                face = _face(photo, file, marker, person, _other_boxes(file, marker))
                self._download(face)
                yield face

    def _photos(self, person: Person, include_archived: bool) -> list[Photo]:
        photos = list(self._listing(person.uid, archived=False))
        if include_archived:
            # archived=true returns only archived photos: a second listing, not a superset.
            photos += self._listing(person.uid, archived=True)
        return photos

    def _listing(self, uid: str, *, archived: bool) -> list[Photo]:
        """Return the photos of a subject, each with all its files, fetched once per run.

        ``count`` limits files, not photos, so one photo's files can span two pages: photos are
        merged by UID and their files by file UID.
        """
        key = (uid, archived)
        if key in self._listings:
            return self._listings[key]
        photos: dict[str, Photo] = {}
        offset = 0
        while True:
            params: dict[str, Any] = {
                "count": PAGE, "offset": offset, "merged": "true", "q": f"subject:{uid}",
            }  # fmt: skip
            if archived:
                params["archived"] = "true"
            response = self.client.request("GET", "photos", params)
            token = response.headers.get("X-Download-Token")
            if token:
                redaction.remember(token)
                self.download_token = token
            page = self.client.json_of("photos", response)
            if not isinstance(page, list):
                raise SourceError(f"{self.client.where} sent an unexpected photo list")
            before = sum(len(p["Files"]) for p in photos.values())
            for photo in page:
                if isinstance(photo, dict) and photo.get("UID"):
                    _merge(photos, photo)
            if sum(len(p["Files"]) for p in photos.values()) == before:
                break  # an empty page, or a server that ignores the offset: nothing new comes
            offset += PAGE
        self._listings[key] = list(photos.values())
        return self._listings[key]

    def _markers(
        self, photo: Photo, person: Person, confirmed_only: bool
    ) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any]]]:
        """Yield (file, marker) of the person's valid face markers on files that exist."""
        files = photo.get("Files") or []
        if files and not any("Markers" in f for f in files):
            raise SourceError(
                f"{self.client.where} lists photos without face markers; PhotoPrism older than"
                " 2021 is not supported"
            )
        for file in files:
            if values.flag(file.get("Missing")) or values.text(file.get("Error")):
                continue
            for marker in file.get("Markers") or []:
                if (
                    values.text(marker.get("SubjUID")) == person.uid
                    and values.text(marker.get("Type") or "face") == "face"
                    and not values.flag(marker.get("Invalid"))
                    and (not confirmed_only or values.text(marker.get("SubjSrc")) == "manual")
                ):
                    yield file, marker

    def _download(self, face: Face) -> None:
        key = (face.root, face.file_name)
        cache = self._caches.get(face.root)
        if cache is None or key in self._fetched:
            return  # an unknown root is reported by the pipeline
        if not self.download_token:
            raise SourceError(f"{self.client.where} gave no download token; cannot fetch files")
        if not re.fullmatch(r"[0-9a-fA-F]{40}", face.file_hash):
            log.warning("%s: PhotoPrism lists no SHA-1 for it; not downloaded", face.file_name)
            return
        try:
            cache.fetch(
                face.file_name,
                face.file_hash,
                lambda tmp: self.client.download(
                    f"dl/{face.file_hash}", {"t": self.download_token}, tmp
                ),
                what=f"{face.file_name} from {self.client.where}",
            )
        except UnsafePath:
            return  # the pipeline refuses the same name, with the reason in the report
        self._fetched.add(key)

    def unassign(self, marker_uid: str) -> None:
        """Tell PhotoPrism a face is not its person: ``DELETE /api/v1/markers/<uid>/subject``.

        The only write this source can make; it refuses unless the source was opened with
        ``allow_writes=True``. Raises SourceError when PhotoPrism refuses.
        """
        if not self.allow_writes:
            raise SourceError(
                "faceset opened PhotoPrism read-only; writing rejections back needs allow_writes"
            )
        if not _UID.match(marker_uid):
            raise SourceError(f"{marker_uid!r} is not a PhotoPrism marker UID")
        self.client.request("DELETE", f"markers/{marker_uid}/subject")


def _merge(photos: dict[str, Photo], photo: Photo) -> None:
    uid = values.text(photo["UID"])
    seen = photos.get(uid)
    if seen is None:
        photos[uid] = {**photo, "Files": list(photo.get("Files") or [])}
        return
    known = {values.text(f.get("UID")) for f in seen["Files"]}
    seen["Files"] += [f for f in photo.get("Files") or [] if values.text(f.get("UID")) not in known]


def _other_boxes(file: Mapping[str, Any], marker: Mapping[str, Any]) -> tuple[RelBox, ...]:
    """Return every other valid face box on the file, named or not."""
    return tuple(
        _box(m)
        for m in file.get("Markers") or []
        if m.get("UID") != marker.get("UID")
        and values.text(m.get("Type") or "face") == "face"
        and not values.flag(m.get("Invalid"))
    )


def _box(marker: Mapping[str, Any]) -> RelBox:
    return RelBox(
        values.real(marker.get("X")),
        values.real(marker.get("Y")),
        values.real(marker.get("W")),
        values.real(marker.get("H")),
    )


def _person(s: Mapping[str, Any]) -> Person:
    return Person(
        uid=values.text(s.get("UID")),
        name=values.text(s.get("Name")),
        alias=values.text(s.get("Alias")),
        slug=values.text(s.get("Slug")),
        hidden=values.flag(s.get("Hidden")),
        private=values.flag(s.get("Private")),
        excluded=values.flag(s.get("Excluded")),
        # The API counts files with this person, not markers; close enough for a listing.
        faces=values.integer(s.get("FileCount")),
    )


def _face(
    photo: Mapping[str, Any],
    file: Mapping[str, Any],
    marker: Mapping[str, Any],
    person: Person,
    others: tuple[RelBox, ...],
) -> Face:
    src = values.text(marker.get("Src"))
    # PhotoPrism leaves out zero values (omitempty): absent means 0.
    return Face(
        marker_uid=values.text(marker.get("UID")),
        file_uid=values.text(file.get("UID")),
        photo_uid=values.text(photo.get("UID")),
        subject_uid=person.uid,
        subject_name=person.name,
        root=values.text(file.get("Root")) or "/",
        file_name=values.text(file.get("Name")),
        box=RelBox(*(values.coordinate(marker.get(k)) for k in ("X", "Y", "W", "H"))),
        file_hash=values.text(file.get("Hash")),
        file_width=values.integer(file.get("Width")),
        file_height=values.integer(file.get("Height")),
        file_type=values.text(file.get("FileType")),
        # Only boxes the detector found are pixel squares; 'manual' ones are drawn by hand.
        detected=src in ("image", ""),
        confirmed=values.text(marker.get("SubjSrc")) == "manual",
        score=values.integer(marker.get("Score")),
        size=values.integer(marker.get("Size"), -1),
        quality=values.integer(marker.get("Q")),
        face_dist=values.real(marker.get("FaceDist")),
        taken_at=values.timestamp(photo.get("TakenAt")),
        others=others,
    )
