"""`vitonprep build --distributor ray`: shard tasks on CPUs, model stages optionally in their own actors.

Every shard is a Ray task; each worker process builds one `vitonprep.build.ShardMaker` (pipeline and models
loaded once) on its first shard and keeps it for the next (`vitonprep.distribute.ray_runner`). A
stage whose YAML block says ``resources: {actors: N, num_cpus, num_gpus, batch_size}`` instead gets N
`StageActor`s reserving exactly those resources; shard workers send it ``batch_size`` samples per call and spread
their calls over its actors, and the actor runs the back-end once per call (`Stage.run_batch`). A back-end's
``device: auto`` is resolved inside the actor, so a ``num_gpus: 1`` actor computes on the GPU Ray gave it. Photo I/O, the deterministic maps, encoding and shard writes stay in the shard
workers, so a GPU only runs models.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

from vitonprep.build import BuildOptions, Offload, ShardMaker
from vitonprep.config import PipelineConfig, StageResources
from vitonprep.distribute.ray_runner import (
    RayOptions, connect, head_reachable, import_ray, run_shard_tasks_ray, wait_ready, worker_count,
)
from vitonprep.errors import ConfigError, SampleError
from vitonprep.runner import ProgressCallback, ShardTask, _worker_init
from vitonprep.shards import ShardResult

logger = logging.getLogger(__name__)


class StageActor:
    """One model stage in its own process (a GPU, typically). Decorated with ``ray.remote`` at run time."""

    def __init__(self, cfg: PipelineConfig, stage_name: str):
        from vitonprep.stages import Pipeline

        _worker_init()
        # the actor owns its num_cpus (a shard worker owns one): torch's intra-op threads follow them
        threads = max(1, int(getattr(cfg.stages, stage_name).resources.num_cpus))
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:  # pragma: no cover - the default pipeline's stages need no torch
            pass
        self.stage = next(s for s in Pipeline.from_config(cfg).stages if s.name == stage_name)
        self.stage.setup()  # the model is loaded once per actor, on the device it resolves to here

    def ready(self) -> bool:
        return True

    def run(self, ctxs: list[dict[str, Any]]) -> tuple[list[Any], dict[str, float]]:
        """The stage on a batch of contexts, in one back-end call where the back-end batches (`Stage.run_batch`).
        A failed sample comes back as ``("SampleError", stage, reason, source)``: SampleError itself does not
        survive pickling (its constructor takes three arguments)."""
        t0 = time.perf_counter()
        out = [("SampleError", r.stage, r.reason, r.source) if isinstance(r, SampleError) else r
               for r in self.stage.run_batch(ctxs)]
        return out, {self.stage.name: time.perf_counter() - t0}


class _ActorStage:
    """A picklable `RemoteStage`: spreads batches over a stage's actors by batch number."""

    def __init__(self, actors: Sequence[Any]):
        self.actors = list(actors)

    def __call__(self, n: int, ctxs: list[dict[str, Any]]) -> tuple[list[Any], dict[str, float]]:
        import ray

        outs, secs = ray.get(self.actors[n % len(self.actors)].run.remote(ctxs))
        return [SampleError(*o[1:]) if isinstance(o, tuple) else o for o in outs], secs


class _MakerFactory:
    """Builds the shard worker's ShardMaker inside the worker process (a WorkFactory)."""

    def __init__(self, cfg: PipelineConfig, offload: dict[str, Offload]):
        self.cfg, self.offload = cfg, offload

    def __call__(self) -> ShardMaker:
        return ShardMaker(self.cfg, self.offload)


def stage_resources(cfg: PipelineConfig) -> dict[str, StageResources]:
    """The stages that asked for their own actors (``resources.actors > 0``)."""
    return {name: getattr(cfg.stages, name).resources for name in cfg.stages.__dataclass_fields__
            if getattr(cfg.stages, name).resources.actors > 0}


def run_build_on_ray(cfg: PipelineConfig, tasks: Sequence[ShardTask], options: BuildOptions,
                     progress: ProgressCallback | None = None) -> list[ShardResult]:
    ray = import_ray()
    started = connect(ray, options.ray_address)
    try:
        wanted = stage_resources(cfg)
        ray_options = RayOptions(address=options.ray_address, workers=options.workers,
                                 max_shard_retry=options.max_shard_retry)
        # refuse what the cluster cannot place before creating anything: Ray would wait for it forever
        have_gpus = ray.cluster_resources().get("GPU", 0.0)
        need_gpus = sum(r.actors * r.num_gpus for r in wanted.values())
        if need_gpus > have_gpus:
            raise ConfigError(f"stage actors need {need_gpus:g} GPUs, the Ray cluster has {have_gpus:g} "
                              "(stages.*.resources)")
        reserved = sum(r.actors * r.num_cpus for r in wanted.values())
        worker_count(ray, ray_options, reserved)
        offload, stage_actors = {}, []
        try:
            for name, res in wanted.items():
                # stateless between calls, so Ray may restart a crashed one and replay the call
                remote = ray.remote(StageActor).options(num_cpus=res.num_cpus, num_gpus=res.num_gpus,
                                                        max_restarts=2, max_task_retries=2)
                actors = [remote.remote(cfg, name) for _ in range(res.actors)]
                stage_actors += actors
                offload[name] = Offload(_ActorStage(actors), res.batch_size)
                logger.info("stage %s: %d actors x (%g CPU, %g GPU), batch %d", name, res.actors, res.num_cpus,
                            res.num_gpus, res.batch_size)
            wait_ready(ray, stage_actors, "stage actors")
            return run_shard_tasks_ray(tasks, _MakerFactory(cfg, offload), ray_options, progress, reserved,
                                       need_gpus)
        finally:
            if stage_actors and head_reachable(ray):  # with the head gone, ray.kill would block
                for a in stage_actors:
                    ray.kill(a)
    finally:
        if started:
            ray.shutdown()
