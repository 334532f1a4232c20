"""The public library API: every `vitonprep` command's library twin, plus one pair prepared in memory.

These are the names ``import vitonprep`` offers (``vitonprep.build(...)``, ``vitonprep.prepare_pair(...)``); vitontrain
and users call them instead of reaching into the modules behind them, which may move. Each function takes plain
paths and names, resolves the configuration once, and returns the report the command prints. Input errors are
``ConfigError`` (raised before any image is read); per-sample failures are recorded in the reports, never raised,
except by ``prepare_pair``, whose one sample has nowhere else to go.

Output folders get the command's guarantees: an output that equals an input is refused, ``overwrite=True`` refuses
any nesting with an input and clears only vitonprep output, and one process at a time writes into a folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from vitonprep.build import BuildOptions, BuildReport, build_dataset
from vitonprep.config import PipelineConfig, load_pipeline_config
from vitonprep.convert import dresscode as convert_dresscode
from vitonprep.convert import vitonhd as convert_vitonhd
from vitonprep.convert.common import ConvertConfig, ConvertReport, convert_dataset
from vitonprep.errors import ConfigError, SampleError
from vitonprep.export import EXPORTERS, export_dataset
from vitonprep.export.common import ExportReport
from vitonprep.outdir import clear_output, output_lock, refuse_overlap
from vitonprep.photos import key_from_name
from vitonprep.raw import RawItem
from vitonprep.schema import sample_key
from vitonprep.shards import Failure, Sample
from vitonprep.stages import Pipeline
from vitonprep.validate import ValidationReport, validate_shards

logger = logging.getLogger(__name__)

__all__ = [
    "EXPORT_FORMATS", "BuildReport", "ConvertReport", "ExportReport", "ValidationReport", "build", "convert",
    "convert_samples", "export", "load_pipeline", "prepare_pair", "validate",
]

#: the converters' planners and per-sample makers, by ``vitonprep convert`` format name
_CONVERTERS = {"vitonhd": convert_vitonhd, "dresscode": convert_dresscode}


#: the export formats ``export`` accepts
EXPORT_FORMATS: tuple[str, ...] = tuple(sorted(EXPORTERS))


def load_pipeline(name_or_path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """The frozen pipeline config of a YAML file, or of a shipped pipeline by name (``"default"``,
    ``"vitonhd-reference"``, ...), with dotted overrides applied first (``{"persons.several": "reject"}``).
    Unknown keys and wrong types raise ``ConfigError`` naming the file and the key."""
    return load_pipeline_config(name_or_path, dict(overrides or {}))


def _options(cls: type, options: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``options`` checked against the fields of dataclass ``cls``: a misspelt keyword is a ConfigError."""
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"{what}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    return dict(options)


def build(raw: str | os.PathLike, out: str | os.PathLike, *, pipeline: str | os.PathLike | PipelineConfig = "default",
          overrides: Mapping[str, Any] | None = None, overwrite: bool = False,
          progress: Callable[..., None] | None = None, **options: Any) -> BuildReport:
    """Library twin of ``vitonprep build RAW OUT``: raw photos (or vitonprep shards) into shards in ``out``.

    ``pipeline`` is a name, a YAML path or a loaded config; ``overrides`` are dotted pipeline keys (``category``,
    ``split``, ``samples_per_shard``...). ``options`` are ``BuildOptions`` fields: ``workers``, ``pairs_file``,
    ``strict``, ``distributor`` ("local" | "ray"), ``ray_address``, ``max_shard_retry``. A rerun into the same
    ``out`` resumes. The shards are not validated here: call ``validate(out)``, as the command does.
    """
    cfg = pipeline if isinstance(pipeline, PipelineConfig) else load_pipeline(pipeline, overrides)
    if isinstance(pipeline, PipelineConfig) and overrides:
        raise ConfigError("overrides apply to a pipeline name or file, not to a loaded PipelineConfig")
    opts = BuildOptions(**_options(BuildOptions, options, "build"))
    pipeline_file = Path(pipeline) if not isinstance(pipeline, PipelineConfig) and Path(pipeline).is_file() else None
    inputs = {"RAW": raw, "pairs_file": opts.pairs_file, "weights_dir": cfg.weights_dir or None,
              "pipeline": pipeline_file}
    refuse_overlap("OUT", out, inputs, overwrite)
    with output_lock(out):
        if overwrite:
            clear_output(out)
        if progress is None:
            return build_dataset(cfg, str(raw), str(out), opts)
        return build_dataset(cfg, str(raw), str(out), opts, progress=progress)


def convert(fmt: str, src: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False,
            progress: Callable[..., None] | None = None, **options: Any) -> ConvertReport:
    """Library twin of ``vitonprep convert FMT SRC OUT`` (``fmt``: "vitonhd" | "dresscode").

    ``options`` are ``ConvertConfig`` fields: ``samples_per_shard``, ``workers``, ``default_split`` (the split of a
    single split folder), ``categories`` (DressCode), ``name``. A rerun into the same ``out`` resumes."""
    cfg = ConvertConfig(fmt, Path(src), Path(out), **_options(ConvertConfig, options, "convert"))
    refuse_overlap("OUT", cfg.out, {"SRC": cfg.source}, overwrite)
    with output_lock(cfg.out):
        if overwrite:
            clear_output(cfg.out)
        return convert_dataset(cfg, progress)


def validate(shard_dir: str | os.PathLike, *, workers: int = 1, strict: bool = False) -> ValidationReport:
    """Library twin of ``vitonprep validate``: every member of every shard decoded and checked against the shard
    contract, the stats files and the manifest. ``report.ok`` is the command's exit status. Quality flags in
    meta.json are warnings; ``strict`` makes them errors (``vitonprep validate --strict``)."""
    return validate_shards(Path(shard_dir), workers=workers, strict=strict)


def export(shard_dir: str | os.PathLike, out: str | os.PathLike, fmt: str = "vitonhd", *, as_shards: bool = False,
           keep_flagged: bool = False, progress: Callable[[str], None] | None = None) -> ExportReport:
    """Library twin of ``vitonprep export SHARDS OUT --format FMT`` (``fmt``: one of ``EXPORT_FORMATS``).

    Only samples that pass validate's checks are written, each whole or not at all; refused ones are listed in
    ``report.refused``; samples the quality checks flagged are left out (``report.flagged``) unless
    ``keep_flagged``. ``as_shards``: one tar per split and resolution (tryondiffusion only). A wrong format or
    option, or ``out`` equal to ``shard_dir``, raises ``ConfigError``."""
    if fmt not in EXPORTERS:
        raise ConfigError(f"unknown export format {fmt!r}; known: {sorted(EXPORTERS)}")
    if as_shards and fmt != "tryondiffusion":
        raise ConfigError(f"as_shards is only for the tryondiffusion format, not {fmt!r}")
    refuse_overlap("OUT", out, {"SHARDS": shard_dir}, False)  # the exported files would land among the shards
    return export_dataset(fmt, Path(shard_dir), Path(out), progress, as_shards=as_shards,
                          keep_flagged=keep_flagged)


def prepare_pair(person: str | os.PathLike, cloth: str | os.PathLike, pipeline: str | os.PathLike = "default",
                 category: str | None = None) -> Sample:
    """One (person, garment) pair through a pipeline, in memory: the encoded sample ``vitonprep build`` would write
    for it (``Sample.key``, ``Sample.members``: member name -> bytes; decode them with ``vitonprep.codecs``).

    Raises ``FileNotFoundError`` for a missing photo and ``SampleError`` when the pipeline rejects the pair (no
    person, several persons, cut off, ...): its message names the stage and the reason."""
    person, cloth = Path(person).resolve(), Path(cloth).resolve()
    for p, what in ((person, "person photo"), (cloth, "garment photo")):
        if not p.is_file():
            raise FileNotFoundError(f"{what} not found: {p}")
    cfg = load_pipeline(pipeline, {"category": category} if category else None)
    root = os.path.commonpath([person.parent, cloth.parent])  # meta.json records paths relative to it
    pk, ck = key_from_name(person), key_from_name(cloth)
    pair = "paired" if pk == ck else "unpaired"
    item = RawItem(sample_key(pk, ck, pair), str(person), str(cloth), pair, root)
    pipe = Pipeline.from_config(cfg)
    try:
        return pipe.run(item)
    finally:
        pipe.close()


def convert_samples(fmt: str, root: str | os.PathLike, split: str | None = None) -> Iterator[Sample | Failure]:
    """The samples ``convert(fmt, root, ...)`` would write, one at a time in memory, in plan order: an encoded
    ``Sample``, or the ``Failure`` recorded for an input that cannot be converted. ``split`` keeps one split
    ("train" | "test", also the split of a single split folder, default "test"). Nothing is written."""
    module = _CONVERTERS.get(fmt)
    if module is None:
        raise ConfigError(f"unknown dataset {fmt!r}; choose one of {sorted(_CONVERTERS)}")
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"source folder {root} does not exist")
    # ``out`` is never written: only the planner and the per-sample maker run
    planned, _ = module.plan(ConvertConfig(fmt, root, root / "_unused", default_split=split or "test"))
    for item in planned:
        if isinstance(item, Failure):
            yield item
            continue
        if split is not None and item.split != split:
            continue
        try:
            yield module.make_sample(item)
        except SampleError as exc:
            logger.warning("sample %s failed at %s: %s", item.key, exc.stage, exc.reason)
            yield Failure(source=exc.source or item.files.get("image", item.key), stage=exc.stage,
                          reason=exc.reason, key=item.key)
