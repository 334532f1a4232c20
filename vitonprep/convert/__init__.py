"""Import existing VITON-HD / DressCode folders into vitonprep shards."""

from vitonprep.convert.common import ConvertConfig, ConvertReport, convert_dataset

__all__ = ["ConvertConfig", "ConvertReport", "convert_dataset"]
