"""vitontrain: train and run StableVITON on vitonprep shards."""

__version__ = "0.1.0"
