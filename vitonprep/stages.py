"""The build pipeline: small stages with declared inputs and outputs, model back-ends chosen by name.

A stage reads keys of a per-sample context dict and writes new ones; it does no shard I/O, no multiprocessing
and no printing. Problems with one sample raise `SampleError(stage, reason)`; the runner records them.
`Pipeline.check()` verifies before any image is touched that every key a stage reads is produced upstream.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vitonprep.assemble import Producer, SampleBuilder
from vitonprep.config import BackendChoice, PipelineConfig
from vitonprep.errors import ConfigError, SampleError
from vitonprep.photos import PhotoError, fit_to_canvas, jpeg_stored_as_is, key_from_name, load_photo
from vitonprep.raw import RawItem
from vitonprep.shards import Sample

logger = logging.getLogger(__name__)

Context = dict[str, Any]
INPUT_KEYS = ("item",)


# ---------------------------------------------------------------- back-end registry (name -> factory)

def _pose_mediapipe(params: dict) -> Any:
    from vitonprep.backends.pose_mediapipe import MediapipePose, MediapipePoseConfig

    return MediapipePose(MediapipePoseConfig(**params))


def _person_mediapipe(params: dict) -> Any:
    from vitonprep.backends.person_mediapipe import MediapipePerson, MediapipePersonConfig

    return MediapipePerson(MediapipePersonConfig(**params))


def _parsing_heuristic(params: dict) -> Any:
    from vitonprep.backends import parsing_heuristic as mod

    config = mod.HeuristicParsingConfig(**params)
    return lambda rgb, pose, category: mod.parse_person(rgb, pose, config, category=category)


def _densepose_approx(params: dict) -> Any:
    from vitonprep.backends.densepose_approx import approximate_densepose_parts

    if params:
        raise TypeError(f"densepose-approx-parse takes no parameters, got {sorted(params)}")
    return approximate_densepose_parts


def _densepose_rcnn(params: dict, weights_dir: str | None = None) -> Any:
    # detectron2 + densepose when importable, else the torchvision port; the weight file is looked up now
    from vitonprep.backends.densepose_rcnn import make_densepose_backend

    return make_densepose_backend(params, weights_dir)


def _parsing_schp(params: dict, weights_dir: str | None = None) -> Any:
    # SCHP LIP + ATR -> CIHP with the neck synthesised; both weight files are looked up now
    from vitonprep.backends.parsing_schp import SCHPCIHPParser, SCHPParsingConfig

    return SCHPCIHPParser(SCHPParsingConfig(**params), weights_dir)


def _pose_openpose(params: dict, weights_dir: str | None = None) -> Any:
    from vitonprep.backends.pose_openpose import OpenPoseBody, OpenPoseConfig

    return OpenPoseBody(OpenPoseConfig(**params), weights_dir)


def _cloth_mask_sam(params: dict, weights_dir: str | None = None) -> Any:
    from vitonprep.backends.cloth_mask_sam import SAMClothMask, SAMClothMaskConfig

    return SAMClothMask(SAMClothMaskConfig(**params), weights_dir)


def _cloth_mask_opencv(params: dict) -> Any:
    from vitonprep.backends.cloth_mask_opencv import ClothMaskConfig, cloth_mask

    config = ClothMaskConfig(**params)
    return lambda rgb: cloth_mask(rgb, config)


#: stage kind -> back-end name -> (factory, approximate?)
BACKENDS: dict[str, dict[str, tuple[Callable[[dict], Any], bool]]] = {
    "pose": {"pose-mediapipe-blazepose": (_pose_mediapipe, False),
             "pose-openpose-body": (_pose_openpose, False)},
    "person": {"person-mediapipe": (_person_mediapipe, False)},
    "parsing": {"parsing-heuristic-mediapipe": (_parsing_heuristic, True),
                "parsing-schp": (_parsing_schp, False)},
    "densepose": {"densepose-approx-parse": (_densepose_approx, True),
                  "densepose-rcnn-r50-fpn": (_densepose_rcnn, False)},
    "cloth_mask": {"cloth-mask-opencv": (_cloth_mask_opencv, False),
                   "cloth-mask-sam": (_cloth_mask_sam, False)},
}


def make_backend(kind: str, choice: BackendChoice, weights_dir: str = "") -> tuple[Any, Producer]:
    """Build the back-end; factories of back-ends with weight files take ``weights_dir`` (the --weights-dir option)
    and look their files up now, so a missing file stops the run before any image is touched."""
    import inspect

    from vitonprep.weights import MissingWeightsError

    known = BACKENDS[kind]
    if choice.backend not in known:
        raise ConfigError(f"stages.{kind}.backend: unknown back-end {choice.backend!r}; known: {sorted(known)}")
    factory, approximate = known[choice.backend]
    kwargs = {"weights_dir": weights_dir or None} if "weights_dir" in inspect.signature(factory).parameters else {}
    try:
        backend = factory(dict(choice.params), **kwargs)
    except ConfigError:
        raise
    except MissingWeightsError as exc:
        raise ConfigError(f"stages.{kind} ({choice.backend}): {exc}") from exc
    except (TypeError, ValueError) as exc:  # unknown or invalid parameters
        raise ConfigError(f"stages.{kind}.params: {exc}") from exc
    return backend, Producer(choice.backend, approximate=approximate)


# ---------------------------------------------------------------- stages

@dataclass
class Stage:
    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]

    def setup(self) -> None:
        """Load models (called once per worker process, never at import): the back-end's own ``setup`` if any."""
        backend_setup = getattr(getattr(self, "backend", None), "setup", None)
        if callable(backend_setup):
            backend_setup()

    def close(self) -> None:
        backend_close = getattr(getattr(self, "backend", None), "close", None)
        if callable(backend_close):
            backend_close()

    def __call__(self, ctx: Context) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def run_batch(self, ctxs: list[Context]) -> list[Context | SampleError]:
        """The stage on several samples: each context filled in, or the SampleError its sample raised, in order.
        Model stages whose back-end has ``call_batch`` run it once for the batch (a Ray stage actor's call)."""
        out: list[Context | SampleError] = []
        for ctx in ctxs:
            try:
                self(ctx)
                out.append(ctx)
            except SampleError as exc:
                out.append(exc)
        return out

    def _producer(self, producer: Producer, note: str = "") -> Producer:
        """``producer`` with the back-end's device added to its note; unchanged on the CPU, so CPU-built samples
        stay byte for byte what they were."""
        extra = str(getattr(getattr(self, "backend", None), "device_note", "") or "")
        if not extra:
            return Producer(producer.backend, producer.approximate, note) if note else producer
        return Producer(producer.backend, producer.approximate, f"{note}; {extra}" if note else extra)


def _outcome(call: Callable[[], Any]) -> Any:
    """A back-end call's result, or the ValueError it raised (the per-sample form of `call_batch`'s entries)."""
    try:
        return call()
    except ValueError as exc:
        return exc


def _finish_each(ctxs: list[Context], outcomes: list[Any],
                 finish: Callable[[Context, Any], None]) -> list[Context | SampleError]:
    """The per-sample tail of a batched back-end call: ``finish(ctx, outcome)`` is what `__call__` runs too, so
    both paths store and fail alike."""
    out: list[Context | SampleError] = []
    for ctx, outcome in zip(ctxs, outcomes):
        try:
            finish(ctx, outcome)
            out.append(ctx)
        except SampleError as exc:
            out.append(exc)
    return out


class LoadStage(Stage):
    def __init__(self, cfg: PipelineConfig):
        super().__init__("load", ("item",), ("image", "fit", "cloth", "cloth_fit", "image_jpeg", "cloth_jpeg"))
        self.cfg = cfg

    def __call__(self, ctx: Context) -> None:
        item: RawItem = ctx["item"]
        ctx["image"], ctx["fit"], ctx["image_jpeg"] = self._load(item.person, "person")
        if item.cloth:
            ctx["cloth"], ctx["cloth_fit"], ctx["cloth_jpeg"] = self._load(item.cloth, "cloth")
        else:
            ctx["cloth"] = ctx["cloth_fit"] = ctx["cloth_jpeg"] = None

    def _load(self, path: str, what: str):
        """(canvas RGB, fit, the file's bytes when they can be stored as they are - else None)."""
        try:
            data = Path(path).read_bytes()
            rgb = load_photo(data, path, self.cfg.max_photo_pixels)
        except PhotoError as exc:
            raise SampleError(f"load_{what}", str(exc), path) from exc
        except OSError as exc:
            raise SampleError(f"load_{what}", f"cannot read: {exc}", path) from exc
        size = tuple(self.cfg.size)
        canvas, fit = fit_to_canvas(rgb, size, self.cfg.fit)
        return canvas, fit, (data if jpeg_stored_as_is(data, fit, size) else None)


class PoseStage(Stage):
    def __init__(self, choice: BackendChoice, weights_dir: str = ""):
        super().__init__("pose", ("image",), ("pose",))
        self.backend, self.producer = make_backend("pose", choice, weights_dir)

    def setup(self) -> None:
        self.backend.setup()

    def close(self) -> None:
        self.backend.close()

    def __call__(self, ctx: Context) -> None:
        self._finish(ctx, _outcome(lambda: self.backend(ctx["image"])))

    def run_batch(self, ctxs: list[Context]) -> list[Context | SampleError]:
        call_batch = getattr(self.backend, "call_batch", None)
        if call_batch is None or not ctxs:
            return super().run_batch(ctxs)
        return _finish_each(ctxs, call_batch([c["image"] for c in ctxs]), self._finish)

    def _finish(self, ctx: Context, outcome: Any) -> None:
        from vitonprep.backends.results import NoPersonError

        if isinstance(outcome, NoPersonError):
            raise SampleError("pose", f"no person found: {outcome}", ctx["item"].person) from outcome
        if isinstance(outcome, Exception):
            raise outcome
        ctx["pose"] = outcome
        ctx["producers"]["pose"] = self._producer(self.producer)


class PersonCheckStage(Stage):
    """Person count, size and framing; the policy decides which problems are failures."""

    def __init__(self, choice: BackendChoice, cfg: PipelineConfig):
        super().__init__("person", ("image", "pose"), ("person_check",))
        self.backend, self.producer = make_backend("person", choice)
        self.policy = cfg.persons

    def setup(self) -> None:
        self.backend.setup()

    def close(self) -> None:
        self.backend.close()

    def __call__(self, ctx: Context) -> None:
        from vitonprep.derive.openpose import BODY25_NAMES

        src = ctx["item"].person
        check = self.backend.check_person(ctx["image"], ctx["pose"])
        ctx["person_check"] = check
        if check.num_persons == 0:
            raise SampleError("person", "no person found", src)
        if check.num_persons > 1 and self.policy.several == "reject":
            raise SampleError("person", f"{check.num_persons} persons in the photo (policy: reject)", src)
        if check.person_height_frac < self.policy.min_height_frac:
            raise SampleError("person", f"person too small: spans {check.person_height_frac:.0%} of the image "
                              f"height (minimum {self.policy.min_height_frac:.0%})", src)
        pose = ctx["pose"].keypoints.pose
        missing = [j for j in self.policy.required_joints if pose[BODY25_NAMES.index(j), 2] <= 0]
        if missing:
            raise SampleError("person", f"person cut off or occluded: joints {missing} not found "
                              "(needed for the agnostic mask)", src)


class ParsingStage(Stage):
    def __init__(self, choice: BackendChoice, cfg: PipelineConfig):
        super().__init__("parsing", ("image", "pose"), ("parse",))
        self.backend, self.producer = make_backend("parsing", choice, cfg.weights_dir)
        self.category = cfg.category

    def __call__(self, ctx: Context) -> None:
        self._finish(ctx, _outcome(lambda: self.backend(ctx["image"], ctx["pose"], self.category)))

    def run_batch(self, ctxs: list[Context]) -> list[Context | SampleError]:
        call_batch = getattr(self.backend, "call_batch", None)
        if call_batch is None or not ctxs:
            return super().run_batch(ctxs)
        outcomes = call_batch([c["image"] for c in ctxs], [c["pose"] for c in ctxs], self.category)
        return _finish_each(ctxs, outcomes, self._finish)

    def _finish(self, ctx: Context, outcome: Any) -> None:
        if isinstance(outcome, ValueError):
            raise SampleError("parsing", str(outcome), ctx["item"].person) from outcome
        ctx["parse"] = outcome
        ctx["producers"]["parse"] = self._producer(self.producer)


class DensePoseStage(Stage):
    """Two kinds of back-end: models that read the photo (``backend.reads == ("image",)``, e.g. DensePose R-CNN)
    and the approximation from parse + pose."""

    def __init__(self, choice: BackendChoice, weights_dir: str = ""):
        backend, producer = make_backend("densepose", choice, weights_dir)
        self.from_image = tuple(getattr(backend, "reads", ())) == ("image",)
        super().__init__("densepose", ("image",) if self.from_image else ("parse", "pose"), ("image_densepose",))
        self.backend, self.producer = backend, producer
        self.note = str(getattr(backend, "note", "") or (
            "DensePose part indices from the photo" if self.from_image
            else "DensePose part indices approximated from parse + pose"))

    def __call__(self, ctx: Context) -> None:
        self._finish(ctx, _outcome(lambda: self.backend(ctx["image"]) if self.from_image
                                   else self.backend(ctx["parse"], ctx["pose"].keypoints.pose)))

    def run_batch(self, ctxs: list[Context]) -> list[Context | SampleError]:
        call_batch = getattr(self.backend, "call_batch", None)
        if call_batch is None or not self.from_image or not ctxs:
            return super().run_batch(ctxs)
        return _finish_each(ctxs, call_batch([c["image"] for c in ctxs]), self._finish)

    def _finish(self, ctx: Context, outcome: Any) -> None:
        from vitonprep.derive.densepose import render_densepose

        if isinstance(outcome, ValueError):  # NoPersonError included
            raise SampleError("densepose", str(outcome), ctx["item"].person) from outcome
        ctx["image_densepose"] = render_densepose(outcome)
        ctx["producers"]["image_densepose"] = self._producer(self.producer, self.note)


class ClothMaskStage(Stage):
    def __init__(self, choice: BackendChoice, weights_dir: str = ""):
        super().__init__("cloth_mask", ("cloth",), ("cloth_mask",))
        self.backend, self.producer = make_backend("cloth_mask", choice, weights_dir)

    def __call__(self, ctx: Context) -> None:
        if ctx["cloth"] is None:
            ctx["cloth_mask"] = None
            return
        self._finish(ctx, _outcome(lambda: self.backend(ctx["cloth"])))

    def run_batch(self, ctxs: list[Context]) -> list[Context | SampleError]:
        with_cloth = [c for c in ctxs if c["cloth"] is not None]
        if len(with_cloth) < len(ctxs):  # person-only samples take the per-sample path (no model call)
            done = {id(c): r for c, r in zip(with_cloth, self.run_batch(with_cloth))} if with_cloth else {}
            out: list[Context | SampleError] = []
            for ctx in ctxs:
                if id(ctx) in done:
                    out.append(done[id(ctx)])
                else:
                    self(ctx)
                    out.append(ctx)
            return out
        call_batch = getattr(self.backend, "call_batch", None)
        if call_batch is None or not ctxs:
            return super().run_batch(ctxs)
        return _finish_each(ctxs, call_batch([c["cloth"] for c in ctxs]), self._finish)

    def _finish(self, ctx: Context, outcome: Any) -> None:
        if isinstance(outcome, ValueError):
            raise SampleError("cloth_mask", str(outcome), ctx["item"].cloth) from outcome
        ctx["cloth_mask"] = outcome
        ctx["producers"]["cloth_mask"] = self._producer(self.producer)


class CaptionStage(Stage):
    """Garment tags and an IDM-VTON caption (vitonprep.captions); a tagging failure is recorded in meta, it does
    not fail the sample (the caption member is optional)."""

    def __init__(self, choice: BackendChoice, category: str):
        super().__init__("caption", ("cloth", "cloth_mask", "parse"), ("caption",))
        from vitonprep.captions import CAPTION_BACKENDS, make_tagger

        if choice.backend not in CAPTION_BACKENDS:
            raise ConfigError(f"stages.caption.backend: unknown back-end {choice.backend!r}; "
                              f"known: {sorted(CAPTION_BACKENDS) + ['none']}")
        try:
            self.backend = make_tagger(choice.backend, choice.params)
        except TypeError as exc:
            raise ConfigError(f"stages.caption.params: {exc}") from exc
        self.category = category

    def setup(self) -> None:
        if hasattr(self.backend, "setup"):
            try:
                self.backend.setup()
            except ValueError as exc:  # a missing tag file or weights folder is a run error, not a sample error
                raise ConfigError(f"stages.caption: {exc}") from exc

    def __call__(self, ctx: Context) -> None:
        from vitonprep.captions import caption_record

        ctx["caption"] = None
        item: RawItem = ctx["item"]
        if ctx["cloth"] is None:
            return
        cloth_id = key_from_name(Path(item.cloth))
        # the person's parse describes the garment only when the person wears it (paired samples)
        parse = ctx["parse"] if item.pair == "paired" else None
        try:
            tags = self.backend(cloth_id, ctx["cloth_mask"], parse, self.category, ctx["cloth"])
        except ValueError as exc:
            ctx["caption_error"] = str(exc)
            logger.info("%s: no caption (%s)", item.key, exc)
            return
        ctx["caption"] = caption_record(tags)
        ctx["producers"]["caption"] = Producer(tags.source, approximate=tags.approximate)


class GarmentPoseStage(Stage):
    """Pose of the person wearing the garment in the garment photo (in-the-wild garment images, TryOnDiffusion's
    garment-wearer pose). Off when the photo shows no person: flat shop images give ``cloth_pose = None`` and the
    reason is recorded in meta."""

    #: joints a garment photo must show to count as "worn by a person" (shoulders and hips frame the garment)
    REQUIRED = ("RShoulder", "LShoulder", "RHip", "LHip")

    def __init__(self, choice: BackendChoice, person: BackendChoice, weights_dir: str = ""):
        super().__init__("garment_pose", ("cloth",), ("cloth_pose",))
        self.backend, self.producer = make_backend("pose", choice, weights_dir)
        self.person, _ = make_backend("person", person, weights_dir)

    def setup(self) -> None:
        self.backend.setup()
        self.person.setup()

    def close(self) -> None:
        self.backend.close()
        self.person.close()

    def __call__(self, ctx: Context) -> None:
        from vitonprep.backends.results import NoPersonError
        from vitonprep.derive.openpose import BODY25_NAMES

        ctx["cloth_pose"] = None
        if ctx["cloth"] is None:
            return
        try:
            pose = self.backend(ctx["cloth"])
        except NoPersonError as exc:
            ctx["cloth_pose_status"] = f"no person: {exc}"
            return
        check = self.person.check_person(ctx["cloth"], pose)
        missing = [j for j in self.REQUIRED if pose.keypoints.pose[BODY25_NAMES.index(j), 2] <= 0]
        if check.num_persons == 0 or missing:
            ctx["cloth_pose_status"] = f"no person: persons={check.num_persons}, missing joints {missing}"
            return
        ctx["cloth_pose"] = pose
        ctx["cloth_pose_status"] = "person found"
        ctx["producers"]["cloth_pose"] = self.producer


class DeriveStage(Stage):
    """The deterministic VITON-HD maps, no model.

    upper_body: HR-VITON agnostic-v3.2, agnostic-mask and parse-agnostic (what VITON-HD ships).
    lower_body / dresses: HR-VITON's agnostic covers only the upper body, so the agnostic mask is IDM-VTON's
    ``get_mask_location('hd', category)`` (preprocess_spec 2.3) at 384x512, upsampled (nearest); the agnostic
    image is the photo grayed under it and parse-agnostic is the parse with that region cleared.
    """

    #: CIHP labels of the worn garment per category (gt_cloth_warped_mask)
    GARMENT_LABELS = {"upper_body": (5, 6, 7), "lower_body": (9, 12), "dresses": (6,)}

    def __init__(self, category: str = "upper_body"):
        super().__init__("derive", ("image", "parse", "pose"),
                         ("agn", "agn_mask", "parse_agn", "gt_cloth_warped_mask", "pose_render"))
        self.category = category

    def __call__(self, ctx: Context) -> None:
        from vitonprep.derive import agnostic as agn
        from vitonprep.derive.openpose import render_pose

        image, parse, kp = ctx["image"], ctx["parse"], ctx["pose"].keypoints
        try:
            if self.category == "upper_body":
                ctx["agn"], ctx["agn_mask"] = agn.agnostic_image_and_mask(image, parse, kp.pose)
                ctx["parse_agn"] = agn.parse_agnostic(parse, kp.pose)
                derived = Producer("vitonprep-hrviton-agnostic", note="HR-VITON geometry on the parse and keypoints")
            else:
                ctx["agn_mask"] = self._idm_mask(parse, kp, image.shape[:2])
                ctx["agn"] = np.where(ctx["agn_mask"][..., None], np.uint8(128), image).astype(np.uint8)
                ctx["parse_agn"] = np.where(ctx["agn_mask"], 0, parse).astype(np.uint8)
                derived = Producer("vitonprep-idm-mask", note=f"IDM-VTON get_mask_location('hd', '{self.category}')")
        except ValueError as exc:
            raise SampleError("derive", str(exc), ctx["item"].person) from exc
        ctx["gt_cloth_warped_mask"] = agn.gt_cloth_warped_mask(parse, self.GARMENT_LABELS[self.category])
        ctx["pose_render"] = render_pose(kp, (image.shape[1], image.shape[0]))
        for name in ("agn", "agn_mask", "parse_agn", "gt_cloth_warped_mask"):
            ctx["producers"][name] = derived
        ctx["producers"]["pose_render"] = Producer("vitonprep-render-pose")

    def _idm_mask(self, parse: np.ndarray, kp: Any, hw: tuple[int, int]) -> np.ndarray:
        import cv2

        from vitonprep.derive.masks_idm import cihp_to_idm_parse, get_mask_location
        from vitonprep.derive.openpose import body25_to_coco18

        h, w = hw
        coco = body25_to_coco18(kp.pose)
        pose18 = coco[:, :2] * np.array([384 / w, 512 / h], np.float32)
        pose18[coco[:, 2] <= 0] = 0
        small = get_mask_location("hd", self.category, cihp_to_idm_parse(parse), pose18, 384, 512)
        return cv2.resize(small.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


# ---------------------------------------------------------------- pipeline

@dataclass
class Pipeline:
    cfg: PipelineConfig
    stages: list[Stage] = field(default_factory=list)
    ready: bool = False

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> "Pipeline":
        s = cfg.stages
        pipe = cls(cfg, [LoadStage(cfg), PoseStage(s.pose, cfg.weights_dir), PersonCheckStage(s.person, cfg),
                         ParsingStage(s.parsing, cfg), DensePoseStage(s.densepose, cfg.weights_dir),
                         ClothMaskStage(s.cloth_mask, cfg.weights_dir),
                         DeriveStage(cfg.category)])
        if s.caption.backend != "none":
            pipe.stages.append(CaptionStage(s.caption, cfg.category))
        if s.garment_pose.backend != "none":
            pipe.stages.append(GarmentPoseStage(s.garment_pose, s.person, cfg.weights_dir))
        pipe.check()
        return pipe

    def check(self) -> None:
        available = set(INPUT_KEYS)
        for stage in self.stages:
            missing = [k for k in stage.reads if k not in available]
            if missing:
                raise ConfigError(f"stage {stage.name!r} reads {missing}, which no earlier stage writes")
            available.update(stage.writes)

    def setup(self) -> None:
        if not self.ready:
            for stage in self.stages:
                stage.setup()
            self.ready = True

    def close(self) -> None:
        for stage in self.stages:
            stage.close()
        self.ready = False

    def run(self, item: RawItem, timings: dict[str, float] | None = None) -> Sample:
        self.setup()
        ctx: Context = {"item": item, "producers": {}}
        for stage in self.stages:
            t0 = time.perf_counter()
            stage(ctx)
            if timings is not None:
                timings[stage.name] = timings.get(stage.name, 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        sample = self.encode(ctx)
        if timings is not None:
            timings["encode"] = timings.get("encode", 0.0) + time.perf_counter() - t0
        return sample

    def encode(self, ctx: Context) -> Sample:
        from vitonprep import codecs

        item: RawItem = ctx["item"]
        b = SampleBuilder(item.key)
        photo = Producer("raw-photo", note=f"fitted to {self.cfg.size[0]}x{self.cfg.size[1]} by {self.cfg.fit}")
        # photos that are already canvas-sized JPEGs are stored byte for byte (LoadStage); others are encoded
        if ctx.get("image_jpeg"):
            b.put("image", ctx["image_jpeg"], photo)
        else:
            b.put_array("image", ctx["image"], photo)
        b.put_array("parse", ctx["parse"], ctx["producers"]["parse"])
        b.put("pose", codecs.encode_json(ctx["pose"].keypoints.to_json_dict()), ctx["producers"]["pose"])
        for name in ("agn", "agn_mask", "parse_agn", "gt_cloth_warped_mask", "pose_render", "image_densepose"):
            b.put_array(name, ctx[name], ctx["producers"][name])
        if ctx["cloth"] is not None:
            if ctx.get("cloth_jpeg"):
                b.put("cloth", ctx["cloth_jpeg"], photo)
            else:
                b.put_array("cloth", ctx["cloth"], photo)
            b.put_array("cloth_mask", ctx["cloth_mask"], ctx["producers"]["cloth_mask"])
        check = ctx["person_check"]
        root = Path(item.root)
        meta = {
            "person_file": str(Path(item.person).relative_to(root)),
            "cloth_file": str(Path(item.cloth).relative_to(root)) if item.cloth else "",
            "person_id": key_from_name(Path(item.person)),
            "cloth_id": key_from_name(Path(item.cloth)) if item.cloth else "",
            "pair": item.pair,
            "split": self.cfg.split,
            "category": self.cfg.category,
            "size": list(self.cfg.size),
            "original_size": list(ctx["fit"].original_size),
            "fit": {"person": ctx["fit"].to_dict(), "cloth": ctx["cloth_fit"].to_dict() if ctx["cloth_fit"] else None},
            "person_check": {"num_persons": check.num_persons, "height_frac": round(check.person_height_frac, 4),
                             "cut_off": list(check.cut_off)},
            "pipeline": self.cfg.name,
            "source": {"dataset": "raw photos", "licence": "as the source photos (not recorded by vitonprep)"},
        }
        # optional members (issue 8): caption.json and the garment-wearer pose; why they are absent goes to meta
        if ctx.get("caption") is not None:
            b.put("caption", codecs.encode_json(ctx["caption"]), ctx["producers"]["caption"])
        elif "caption_error" in ctx:
            meta["caption_status"] = ctx["caption_error"]
        if ctx.get("cloth_pose") is not None:
            b.put("cloth_pose", codecs.encode_json(ctx["cloth_pose"].keypoints.to_json_dict()),
                  ctx["producers"]["cloth_pose"])
        if "cloth_pose_status" in ctx:
            meta["cloth_pose_status"] = ctx["cloth_pose_status"]
        return b.finish(meta)
