"""Distributors: the same shard tasks as `vitonprep.runner`, spread over a cluster.

`ray_runner` is the generic part (plan -> skip finished -> submit -> retry -> aggregate) for any shard work;
`ray_build` puts `vitonprep build` on it, with model stages optionally in their own (GPU) actors.
Ray is an optional dependency (``pip install 'vitonprep[ray]'``); nothing here imports it at module import.
"""

from vitonprep.distribute.ray_runner import RAY_MISSING, RayOptions, import_ray, run_shard_tasks_ray

__all__ = ["RAY_MISSING", "RayOptions", "import_ray", "run_shard_tasks_ray"]
