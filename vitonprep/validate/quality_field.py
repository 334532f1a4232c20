"""The ``quality`` field of a sample's meta.json, read as untrusted data.

The quality checks write ``{"flags": [{"check": NAME, "reason": TEXT}, ...], "scores": {NAME: NUMBER, ...}}``
(``vitonprep.quality.QualityReport.to_dict``) as the last key of meta.json; an empty ``flags`` list means the
sample passed. A sample without the key was never checked (converted data, old builds): it is neither flagged nor
passed. A value of any other shape is malformed: validate reports it as an error, export refuses the sample with
the other errors, and the trainer keeps it as unchecked (vitontrain/data/quality.py reads the field by the same
rules, from vitonprep.schema). Keys other than ``flags`` and ``scores`` are ignored, so a later writer may add some.
"""

from __future__ import annotations

from vitonprep import codecs

# the reader itself lives in vitonprep.schema, where the trainer reads the field by the same code; its names are
# re-exported here for validate's, export's and inspect's importers
from vitonprep.schema import QUALITY_KEY, QualityField, cut, finite_number, read_quality, shown

__all__ = ["QUALITY_KEY", "QualityField", "read_quality", "cut", "finite_number", "sample_quality", "shown"]


def sample_quality(members: dict[str, bytes]) -> QualityField:
    """The quality state of an encoded sample (``member suffix -> bytes``); a meta.json that does not decode has
    no field (validate reports it as a meta error)."""
    try:
        meta = codecs.decode_json(members.get("meta.json", b"{}"), "meta.json")
    except codecs.DecodeError:
        return QualityField("unchecked")
    return read_quality(meta)


