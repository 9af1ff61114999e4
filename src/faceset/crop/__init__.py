"""Crop stage: frame each face, read only what the crop needs, write it atomically.

The decoders load with :mod:`faceset.crop.render`, where the crops run; importing this package
only brings the plain settings and job, so a command that crops nothing starts fast.
"""

from faceset.crop.job import CropJob, CropSettings

__all__ = ["CropJob", "CropSettings"]
