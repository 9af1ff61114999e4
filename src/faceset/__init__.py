"""faceset: the faces your photo library already named, as a training set of one person."""

__version__ = "0.1.0"
