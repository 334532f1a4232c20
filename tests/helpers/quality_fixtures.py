"""Module-scoped fixtures the quality test modules share, loaded by tests/conftest.py as a plugin (each module gets
its own decoded copies, so a test that edits one cannot leak into another module)."""

from __future__ import annotations

import pytest
from helpers.shards import decoded_samples

from vitonprep.quality import GarmentFaces


@pytest.fixture(scope="module")
def built(samples_shards) -> list[dict]:
    """data/samples built as upper_body with the default pipeline (5 unpaired samples, BlazePose + heuristic
    parser), decoded."""
    return decoded_samples(samples_shards)


@pytest.fixture(scope="module")
def official(vitonhd_shards) -> list[dict]:
    """data/vitonhd-official converted (3 samples: real photos, official OpenPose, parse and cloth masks), decoded;
    no person count in meta.json."""
    return decoded_samples(vitonhd_shards)


@pytest.fixture(scope="module")
def faces():
    """One garment face detector for the module."""
    detector = GarmentFaces()
    yield detector
    detector.close()
