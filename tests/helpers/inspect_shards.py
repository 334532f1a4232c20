"""Shards for the inspect tests: the bundled official samples with a meta.json ``quality`` field of each kind
(flagged, passed, absent) and a recorded build failure, some carrying HTML in their texts."""

from __future__ import annotations

import json
from pathlib import Path

from vitonprep.shards import Failure, Sample, iter_tar_samples, list_shards, write_manifest, write_shard

#: a text that would run if the report wrote it unescaped (it sets the attribute the browser test looks for)
PAYLOAD = "<script>document.body.setAttribute('data-pwned','1')</script><img src=x onerror=\"document.title='pwned'\">"
FLAGGED = {"flags": [{"check": "left_right", "reason": "shoulders mirrored " + PAYLOAD},
                     {"check": "agn_face", "reason": "agn_mask covers 40% of the face"}],
           "scores": {"left_right": 0.2, "agn_face": 0.4}}
PASSED = {"flags": [], "scores": {"left_right": 1.0}}


def samples(src: Path) -> list[Sample]:
    return [Sample(s.key, dict(s.members)) for t in list_shards(src) for s in iter_tar_samples(t)]


def set_meta(sample: Sample, **change: object) -> None:
    meta = json.loads(sample.members["meta.json"])
    meta.update(change)
    meta = {k: v for k, v in meta.items() if v is not None}
    sample.members["meta.json"] = json.dumps(meta).encode()


def with_quality(src: Path, dst: Path) -> list[str]:
    """``src``'s 3 samples into ``dst`` (one shard) as: passed, unchecked, flagged twice (dataset order), plus
    one failure whose texts carry HTML. Returns the keys in that order."""
    s = samples(src)
    assert len(s) == 3
    set_meta(s[0], quality=PASSED)
    set_meta(s[2], quality=FLAGGED)
    failure = Failure(source="person/evil.jpg", stage="pose", reason="no person found " + PAYLOAD, key=None)
    write_shard(dst, 0, s, [failure])
    write_manifest(dst, "inspect-test", {})
    return [x.key for x in s]
