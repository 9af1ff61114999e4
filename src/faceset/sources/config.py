"""Settings of the library faceset reads from."""

from __future__ import annotations

from pathlib import Path

from faceset.settings import Section


class LibraryConfig(Section):
    db: str | None = None
    """SQLAlchemy URL of PhotoPrism's index: sqlite:///.../index.db or mysql+pymysql://..."""
    db_password_file: Path | None = None
    """File holding the database password, so it never appears on a command line."""
    originals: Path | None = None
    """PhotoPrism's originals folder (file_root '/')."""
    storage: Path | None = None
    """PhotoPrism's storage folder; holds index.db and, by default, the sidecar folder."""
    sidecar: Path | None = None
    """Generated JPEGs of RAW/HEIC/video (file_root 'sidecar'); default <storage>/sidecar."""
    import_path: Path | None = None
    """PhotoPrism's import folder (file_root 'import')."""

    def roots(self) -> dict[str, Path]:
        """Return the directory of each PhotoPrism ``file_root`` this config knows."""
        lib = self
        roots: dict[str, Path] = {}
        if lib.originals:
            roots["/"] = lib.originals
        sidecar = lib.sidecar
        if sidecar is None and lib.storage:
            sidecar = lib.storage / "sidecar"
        if sidecar is not None:
            # PhotoPrism resolves a relative sidecar path against the originals.
            if not sidecar.is_absolute() and lib.originals:
                sidecar = lib.originals / sidecar
            roots["sidecar"] = sidecar
        if lib.import_path:
            roots["import"] = lib.import_path
        return roots
