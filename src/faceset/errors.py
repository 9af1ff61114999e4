"""Errors a user can fix; the CLI turns each into one line."""


class FacesetError(Exception):
    """A problem the user can fix; its message is one sentence naming the thing to fix."""


class ConfigError(FacesetError):
    """A setting is missing or invalid."""


class SourceError(FacesetError):
    """The library cannot be read: unreachable, refused, or not a supported index."""


class PersonNotFound(FacesetError):
    """No person (or more than one) matches what the user asked for."""
