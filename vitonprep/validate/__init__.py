"""`vitonprep validate`: read every sample back through the trainer's decoders and check the contract.

Errors make the dataset unsound (exit 1); warnings are flagged for a person to look at (e.g. a cloth mask under
StableVITON's 122,880-pixel rule, which the official loader would silently replace by all-ones).

The package: ``report`` (issues and the report), ``sample_checks`` (one decoded sample against the contract),
``shard_checks`` (tars against their stats files and the manifest, keys across shards).
"""

from vitonprep.validate.report import Issue, ValidationReport
from vitonprep.validate.sample_checks import validate_sample
from vitonprep.validate.shard_checks import ShardCheck, checked_samples, read_listing, validate_shards

__all__ = ["Issue", "ShardCheck", "ValidationReport", "checked_samples", "read_listing", "validate_sample",
           "validate_shards"]
