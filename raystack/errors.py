"""Domain exceptions: each one a user can cause, with a message naming the file and the fix.

A scan catches :class:`RaystackError` per work unit and records it in the manifest, so
one bad file never stops a run.
"""

from __future__ import annotations


class RaystackError(Exception):
    """Base class of the errors raystack raises for bad input or configuration."""


class ArchiveError(RaystackError):
    """An archive URI cannot be listed (missing folder, bucket, bad key)."""


class UndecodableVideoError(RaystackError):
    """A video file or frame folder cannot be decoded; the message names it and says why."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(f"{uri}: {reason}")


class SchemaVersionError(RaystackError):
    """A store was written with a schema version this code cannot read."""


class ConfigError(RaystackError):
    """A configuration file or override is invalid."""


class InfrastructureError(RaystackError):
    """The store, the archive's server, the disk or a worker was unavailable (an S3 outage
    longer than the retry budget, a full or read-only disk): nothing is wrong with the
    input, and a rerun resumes."""
