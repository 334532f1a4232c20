"""Errors: per-sample failures are values (recorded, the run goes on); configuration errors stop the run."""

from __future__ import annotations


class VitonprepError(Exception):
    """Base class."""


class ConfigError(VitonprepError):
    """Wrong configuration or command-line input; raised before any image is touched."""


class SampleError(VitonprepError):
    """One sample cannot be made. ``stage`` names the step that failed, the message says why."""

    def __init__(self, stage: str, reason: str, source: str = ""):
        super().__init__(f"[{stage}] {source}: {reason}" if source else f"[{stage}] {reason}")
        self.stage = stage
        self.reason = reason
        self.source = source
