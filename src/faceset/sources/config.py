"""Settings of the library faceset reads from."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import PrivateAttr

from faceset.settings import Section

SourceKind = Literal["photoprism", "photoprism-api", "immich", "immich-db", "digikam", "xmp"]
API_SOURCES = ("photoprism-api", "immich")
# Cache sub-folder of each PhotoPrism file_root, mirroring the server's own layout.
PHOTOPRISM_API_ROOTS = {"/": "originals", "sidecar": "sidecar", "import": "import"}


class LibraryConfig(Section):
    # Where the database password came from, to name it when the server refuses it; not a
    # setting (never written, never read from a file).
    _password_from: str = PrivateAttr("")

    @property
    def password_from(self) -> str:
        """Return where the password in ``db`` came from: a variable, a file, or '' (--db)."""
        return self._password_from

    source: SourceKind = "photoprism"
    """Kind of library: photoprism (its database), photoprism-api, immich, immich-db, digikam, xmp."""
    db: str | None = None
    """SQLAlchemy URL of the library's database (PhotoPrism index, Immich, digiKam)."""
    db_password_file: Path | None = None
    """File holding the database password, so it never appears on a command line."""
    originals: Path | None = None
    """PhotoPrism's originals folder (file_root '/'); the photo folder of immich-db, digikam, xmp."""
    storage: Path | None = None
    """PhotoPrism's storage folder; holds index.db and, by default, the sidecar folder."""
    sidecar: Path | None = None
    """Generated JPEGs of RAW/HEIC/video (file_root 'sidecar'); default <storage>/sidecar."""
    import_path: Path | None = None
    """PhotoPrism's import folder (file_root 'import')."""
    url: str | None = None
    """Server address of photoprism-api or immich, e.g. http://192.168.1.5:2342."""
    token_file: Path | None = None
    """File holding the API token (PhotoPrism app password or access token, Immich API key)."""
    ca_file: Path | None = None
    """PEM CA certificate to trust for an HTTPS server with a private certificate."""
    cache: Path | None = None
    """Folder for files downloaded by API sources, reused between runs; default ~/.cache/faceset."""
    timeout: float = 30.0
    """Seconds to wait for an API server before retrying (3 retries, with backoff)."""
    server_path: str | None = None
    """Path of `originals` as the library records it (immich-db: /data or /usr/src/app/upload)."""
    xmp_frame: Literal["stored", "oriented"] = "stored"
    """Frame of XMP regions on rotated photos when the file cannot tell: stored (MWG) or oriented."""

    def roots(self) -> dict[str, Path]:
        """Return the directory of each file root (PhotoPrism ``file_root``) this config knows."""
        if self.source in API_SOURCES:
            from faceset.sources.download_cache import server_folder

            # Downloads land in the cache; without a URL, open_source() names what is missing.
            folder = server_folder(self.cache, self.source, self.url or "http://unset")
            if self.source == "immich":
                return {"/": folder}
            return {name: folder / sub for name, sub in PHOTOPRISM_API_ROOTS.items()}
        if self.source == "digikam":
            # Without a folder, digiKam's own absolute paths are used as they are.
            return {"/": self.originals or Path("/")}
        if self.source != "photoprism":
            return {"/": self.originals} if self.originals else {}
        lib = self
        roots: dict[str, Path] = {}
        if lib.originals:
            roots["/"] = lib.originals
        sidecar = lib.sidecar
        if sidecar is not None and not sidecar.is_absolute() and lib.originals:
            # PhotoPrism resolves a relative sidecar path against the originals.
            sidecar = lib.originals / sidecar
        if sidecar is None and lib.storage:
            # Under the storage folder wherever that is, relative to here or not.
            sidecar = lib.storage / "sidecar"
        if sidecar is not None:
            roots["sidecar"] = sidecar
        if lib.import_path:
            roots["import"] = lib.import_path
        return roots
