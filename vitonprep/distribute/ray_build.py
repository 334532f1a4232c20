"""`vitonprep build --distributor ray`: shard tasks on CPUs, model stages optionally in their own actors.

Every shard is a Ray task; each worker process builds one `vitonprep.build_worker.ShardMaker` (pipeline and models
loaded once) on its first shard and keeps it for the next (`vitonprep.engine.run_task`). A stage whose YAML block
says ``resources: {actors: N, num_cpus, num_gpus, batch_size}`` instead gets N `StageActor`s reserving exactly
those resources; shard workers send it ``batch_size`` samples per call and spread their calls over its actors, and
the actor runs the back-end once per call (`Stage.run_batch`). A back-end's ``device: auto`` is resolved inside
the actor, so a ``num_gpus: 1`` actor computes on the GPU Ray gave it. Photo I/O, the deterministic maps, encoding
and shard writes stay in the shard workers, so a GPU only runs models.

Per-sample progress: when the work carries a tick callable (``BuildWork.ticks``, in the driver), the shard workers
report each sample to a `TickSink` actor instead, and the driver drains it into that callable while it waits for
shards (`RayDistributor.on_poll`). `cluster_workers` tells the command line how many shard workers the cluster
holds before it plans, so a small build is cut into one shard per worker as the local pool's is.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from vitonprep.build_worker import BuildWork, Offload
from vitonprep.config import PipelineConfig, StageResources
from vitonprep.distribute.ray_runner import (
    RayDistributor,
    RayOptions,
    connect,
    head_reachable,
    import_ray,
    wait_ready,
    worker_count,
)
from vitonprep.engine import ShardLedger
from vitonprep.errors import ConfigError, SampleError
from vitonprep.runner import worker_init
from vitonprep.stages import Pipeline, SampleContext

logger = logging.getLogger(__name__)


class StageActor:
    """One model stage in its own process (a GPU, typically). Decorated with ``ray.remote`` at run time."""

    def __init__(self, cfg: PipelineConfig, stage_name: str):
        worker_init()
        # the actor owns its num_cpus (a shard worker owns one): torch's intra-op threads follow them
        threads = max(1, int(getattr(cfg.stages, stage_name).resources.num_cpus))
        try:
            import torch  # only the reference back-ends need it: imported here, where they run

            torch.set_num_threads(threads)
        except ImportError:  # pragma: no cover - the default pipeline's stages need no torch
            pass
        self.stage = next(s for s in Pipeline.from_config(cfg).stages if s.name == stage_name)
        self.stage.setup()  # the model is loaded once per actor, on the device it resolves to here

    def ready(self) -> bool:
        return True

    def run(self, ctxs: list[SampleContext]) -> tuple[list[SampleContext | SampleError], dict[str, float]]:
        """The stage on a batch of contexts, in one back-end call where the back-end batches (`Stage.run_batch`);
        a failed sample comes back as its SampleError (it pickles)."""
        t0 = time.perf_counter()
        out = self.stage.run_batch(ctxs)
        return out, {self.stage.name: time.perf_counter() - t0}


class _ActorStage:
    """A picklable `vitonprep.build_worker.RemoteStage`: spreads batches over a stage's actors by call number."""

    def __init__(self, actors: Sequence[Any]):
        self.actors = list(actors)

    def __call__(self, n: int,
                 ctxs: list[SampleContext]) -> tuple[list[SampleContext | SampleError], dict[str, float]]:
        ray = import_ray()
        return ray.get(self.actors[n % len(self.actors)].run.remote(ctxs))


class TickSink:
    """Collects the shard workers' per-sample ticks (shard index, samples of its attempt done) until the driver
    takes them. Decorated with ``ray.remote`` at run time; it holds no CPU."""

    def __init__(self) -> None:
        self.ticks: list[tuple[int, int]] = []

    def put(self, index: int, done: int) -> None:
        self.ticks.append((index, done))

    def take(self) -> list[tuple[int, int]]:
        ticks, self.ticks = self.ticks, []
        return ticks


class _SinkTicks:
    """The picklable tick callable shard workers get: waits for the sink to hold the tick, so every tick of a shard
    is there before its result reaches the driver (a lost one is logged by `ShardMaker`, never fails the shard).
    After one failed or slow call (a sink alive but not answering) the shard stops ticking: otherwise every sample
    could wait out the timeout."""

    def __init__(self, sink: Any):
        self.sink, self.failed = sink, False

    def __call__(self, index: int, done: int) -> None:
        if self.failed:
            return
        ray = import_ray()
        try:
            ray.get(self.sink.put.remote(index, done), timeout=10)
        except Exception:
            self.failed = True
            raise


class _Drain:
    """The driver's side: takes the sink's ticks and hands them to ``forward``; after one failed call (the sink or
    the head lost) it stops trying, since progress is a courtesy and a blocked call would hold the run."""

    def __init__(self, ray: Any, sink: Any, forward: Callable[[int, int], None]):
        self.ray, self.sink, self.forward, self.alive = ray, sink, forward, True

    def __call__(self) -> None:
        if not self.alive:
            return
        try:
            ticks = self.ray.get(self.sink.take.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - whatever Ray raises, the shards go on without per-sample progress
            logger.debug("per-sample progress lost", exc_info=True)
            self.alive = False
            return
        for index, done in ticks:
            self.forward(index, done)


def _tick_sink(ray: Any) -> Any:
    """A `TickSink` on the driver's node (soft: anywhere if that node cannot take it), holding no resources."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # ray is installed: import_ray ran

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    return ray.remote(TickSink).options(num_cpus=0, scheduling_strategy=here).remote()


def cluster_workers(cfg: PipelineConfig, address: str | None) -> tuple[int, bool]:
    """Shard workers the Ray cluster at ``address`` holds after the pipeline's stage actors (the command line's
    default, known before planning so a small build is split over them), and whether this call started Ray (the
    caller then shuts it down; the build joins the running instance)."""
    ray = import_ray()
    started = connect(ray, address)
    try:
        reserved = sum(r.actors * r.num_cpus for r in stage_resources(cfg).values())
        return worker_count(ray, RayOptions(address=address), reserved), started
    except BaseException:
        if started:
            ray.shutdown()
        raise


def stage_resources(cfg: PipelineConfig) -> dict[str, StageResources]:
    """The stages that asked for their own actors (``resources.actors > 0``)."""
    return {name: getattr(cfg.stages, name).resources for name in cfg.stages.__dataclass_fields__
            if getattr(cfg.stages, name).resources.actors > 0}


@dataclass(frozen=True)
class RayBuildDistributor:
    """The build's distributor on Ray: joins (or starts) the cluster, places the stage actors the pipeline asks
    for, then runs the shards with `RayDistributor`, their work (`BuildWork`) sending offloaded stages to the
    actors. Refuses, before creating anything, what the cluster cannot place (Ray would wait for it forever)."""

    cfg: PipelineConfig
    options: RayOptions

    def run(self, ledger: ShardLedger, factory: BuildWork) -> None:
        ray = import_ray()
        started = connect(ray, self.options.address)
        try:
            wanted = stage_resources(self.cfg)
            have_gpus = ray.cluster_resources().get("GPU", 0.0)
            need_gpus = sum(r.actors * r.num_gpus for r in wanted.values())
            if need_gpus > have_gpus:
                raise ConfigError(f"stage actors need {need_gpus:g} GPUs, the Ray cluster has {have_gpus:g} "
                                  "(stages.*.resources)")
            reserved = sum(r.actors * r.num_cpus for r in wanted.values())
            worker_count(ray, self.options, reserved)
            offload, stage_actors = {}, []
            try:
                for name, res in wanted.items():
                    # stateless between calls, so Ray may restart a crashed one and replay the call
                    remote = ray.remote(StageActor).options(num_cpus=res.num_cpus, num_gpus=res.num_gpus,
                                                            max_restarts=2, max_task_retries=2)
                    actors = [remote.remote(self.cfg, name) for _ in range(res.actors)]
                    stage_actors += actors
                    offload[name] = Offload(_ActorStage(actors), res.batch_size)
                    logger.info("stage %s: %d actors x (%g CPU, %g GPU), batch %d", name, res.actors, res.num_cpus,
                                res.num_gpus, res.batch_size)
                wait_ready(ray, stage_actors, "stage actors")
                work = dataclasses.replace(factory, offload=offload) if offload else factory
                drain = None
                if work.ticks is not None:  # a callable of this process: the workers tick a sink it drains
                    sink = _tick_sink(ray)
                    stage_actors.append(sink)  # killed with the stage actors at the end
                    work = dataclasses.replace(work, ticks=_SinkTicks(sink))
                    drain = _Drain(ray, sink, factory.ticks)
                RayDistributor(self.options, reserved, need_gpus, on_poll=drain).run(ledger, work)
            finally:
                if stage_actors and head_reachable(ray):  # with the head gone, ray.kill would block
                    for a in stage_actors:
                        ray.kill(a)
        finally:
            if started:
                ray.shutdown()
