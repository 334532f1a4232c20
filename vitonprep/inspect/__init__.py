"""`vitonprep inspect`: overlays that show a sample's defects, contact sheets paged through every sample (flagged
first), and a static HTML report.

Layout: ``collect`` (one record per sample from untrusted shards, the meta.json ``quality`` field, the order),
``overlays`` (maps drawn on the photo, row labels), ``sheet`` (PNG contact sheets) and ``html`` (the report).
"""

from vitonprep.inspect.collect import InspectSummary, Quality, SampleRecord, collect, order_records, read_quality
from vitonprep.inspect.sheet import contact_sheet, page_path

__all__ = ["InspectSummary", "Quality", "SampleRecord", "collect", "contact_sheet", "order_records", "page_path",
           "read_quality"]
