"""Crop stage: frame each face, read only what the crop needs, write it atomically."""

from faceset.crop.render import CropJob, CropSettings, crop_face

__all__ = ["CropJob", "CropSettings", "crop_face"]
