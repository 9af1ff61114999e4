"""Errors of the training stage; each becomes one line through the CLI's ``command``."""

from __future__ import annotations

from faceset.errors import ConfigError, FacesetError


class DatasetError(FacesetError):
    """The folder is not a faceset or kohya dataset, or one of its files is unusable."""


class BaseModelError(FacesetError):
    """The base model cannot be loaded, or is not the family ``--for`` names."""


class OutOfMemory(FacesetError):
    """Training ran out of accelerator or host memory; the message names the flag to lower."""


__all__ = ["BaseModelError", "ConfigError", "DatasetError", "OutOfMemory"]
