"""Distributors: the same shard tasks as the local runner (`vitonprep.runner.LocalDistributor`), spread over a
cluster.

`ray_runner.RayDistributor` is the engine's generic distributor on Ray (any shard work; the ledger and retry
budget are `vitonprep.engine`'s); `ray_build.RayBuildDistributor` puts `vitonprep build` on it, with model stages
optionally in their own (GPU) actors. Ray is an optional dependency (``pip install 'vitonprep[ray]'``); nothing
here imports it at module import.
"""

from vitonprep.distribute.ray_runner import RAY_MISSING, RayDistributor, RayOptions, import_ray, run_shard_tasks_ray

__all__ = ["RAY_MISSING", "RayDistributor", "RayOptions", "import_ray", "run_shard_tasks_ray"]
