"""vitonprep: make, check and convert VITON-HD-style virtual try-on datasets as WebDataset shards."""

__version__ = "0.1.0"

from vitonprep.schema import FIELDS, SCHEMA_VERSION  # noqa: E402

__all__ = ["FIELDS", "SCHEMA_VERSION", "__version__"]
