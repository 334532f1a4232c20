"""`vitonprep validate`: read every sample back through the trainer's decoders and check the contract.

Errors make the dataset unsound (exit 1); warnings are flagged for a person to look at (e.g. a cloth mask under
StableVITON's 122,880-pixel rule, which the official loader would silently replace by all-ones).

Quality flags in meta.json (``quality``) are warnings (``strict``: errors); a malformed ``quality`` is an error.

The package: ``report`` (issues and the report), ``quality_field`` (meta.json ``quality`` read as untrusted data),
``sample_checks`` (one decoded sample against the contract),
``shard_checks`` (tars against their stats files and the manifest, keys across shards).
"""

from vitonprep.validate.quality_field import QualityField, read_quality, sample_quality
from vitonprep.validate.report import Issue, ValidationReport
from vitonprep.validate.sample_checks import validate_sample
from vitonprep.validate.shard_checks import ShardCheck, checked_samples, read_listing, validate_shards

__all__ = ["Issue", "QualityField", "ShardCheck", "ValidationReport", "checked_samples", "read_listing",
           "read_quality", "sample_quality", "validate_sample", "validate_shards"]
