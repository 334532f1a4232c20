"""Errors: per-sample failures are values (recorded, the run goes on); configuration errors stop the run.

Every error class of vitonprep derives from `VitonprepError`. The per-sample channel is narrow on purpose:

* a back-end (or the photo loader) raises `InputError` (or a subclass: `NoPersonError`, `PhotoError`) when the
  *input* cannot give a result - no person, an unreadable photo, no garment in a garment photo;
* a stage catches only `InputError` and turns it into `SampleError(stage, reason, source)`, which the runner
  records in ``_stats.json``;
* anything else (a numpy ``ValueError``/``IndexError``, a ``TypeError``) is a bug and fails the run.

`InputError` also derives from ``ValueError`` so that callers of a back-end outside the pipeline that catch
``ValueError`` keep working; the pipeline itself never catches ``ValueError``.
"""

from __future__ import annotations

from pathlib import Path


class VitonprepError(Exception):
    """Base class of every vitonprep error."""


class ConfigError(VitonprepError):
    """Wrong configuration or command-line input; raised before any image is touched."""


class InputError(VitonprepError, ValueError):
    """One input cannot give a result (the photo, not the code, is at fault); stages record it as a SampleError."""


class NoPersonError(InputError):
    """The model found no person in the image (blank, noise, too small, ...)."""


class PhotoError(InputError):
    """A photo cannot be used: unreadable, unsupported format, too many pixels (a decompression bomb)."""


class MissingWeightsError(VitonprepError, FileNotFoundError):
    """A weight file is not where the config, ``--weights-dir`` or the environment says (see
    `vitonprep.weights.find_weights`, which builds the message from the spec and the places it looked)."""

    def __init__(self, spec: object, looked: list[str], message: str):
        super().__init__(message)
        self.spec = spec
        self.looked = list(looked)

    def __reduce__(self):
        return (type(self), (self.spec, self.looked, str(self)))


class SampleError(VitonprepError):
    """One sample cannot be made. ``stage`` names the step that failed, the message says why.

    Picklable (`__reduce__`): worker processes and Ray tasks ship it as it is.
    """

    def __init__(self, stage: str, reason: str, source: str | Path = ""):
        source = str(source)
        super().__init__(f"[{stage}] {source}: {reason}" if source else f"[{stage}] {reason}")
        self.stage = stage
        self.reason = reason
        self.source = source

    def __reduce__(self):
        return (type(self), (self.stage, self.reason, self.source))
