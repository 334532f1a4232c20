"""`vitonprep export`: shards -> the folder layouts other trainers read, one module per format.

Each format documents in its module docstring (and in docs/exports.md) the consumer loader it was checked
against. ``export_vitonhd`` stays importable from here for existing callers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from vitonprep.export.common import ExportReport
from vitonprep.export.dresscode import export_dresscode
from vitonprep.export.idm_vton import export_idm_vton
from vitonprep.export.tryondiffusion import export_tryondiffusion
from vitonprep.export.vitonhd import VITONHD_LAYOUT, export_vitonhd

EXPORTERS: dict[str, Callable[..., ExportReport]] = {
    "vitonhd": export_vitonhd,
    "idm-vton": export_idm_vton,
    "dresscode": export_dresscode,
    "tryondiffusion": export_tryondiffusion,
}


def export_dataset(fmt: str, shard_dir: Path, out: Path, progress: Callable[[str], None] | None = None,
                   as_shards: bool = False, keep_flagged: bool = False) -> ExportReport:
    """Library twin of `vitonprep export --format FMT` (``as_shards``: tars instead of files, tryondiffusion only;
    ``keep_flagged``: export the samples the quality checks flagged too, every format alike)."""
    if fmt not in EXPORTERS:
        raise ValueError(f"unknown export format {fmt!r}; known: {sorted(EXPORTERS)}")
    if as_shards:
        if fmt != "tryondiffusion":
            raise ValueError(f"--shards is only for the tryondiffusion format, not {fmt!r}")
        return export_tryondiffusion(Path(shard_dir), Path(out), progress, as_shards=True,
                                     keep_flagged=keep_flagged)
    return EXPORTERS[fmt](Path(shard_dir), Path(out), progress, keep_flagged=keep_flagged)


__all__ = ["EXPORTERS", "ExportReport", "VITONHD_LAYOUT", "export_dataset", "export_dresscode", "export_idm_vton",
           "export_tryondiffusion", "export_vitonhd"]
