"""What both DensePose R-CNN implementations (the torchvision port and detectron2) turn their outputs into.

`result_from_outputs` is detectron2's ``detector_postprocess`` + ``densepose_chart_predictor_output_to_result``
per instance, pasted in score order as ``DensePoseResultsVisualizer`` draws them on one canvas; it runs on the
CPU whatever the model's device. The two implementations share it so that they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vitonprep.backends.densepose_rcnn_model import clip_boxes, nonempty
from vitonprep.backends.devices import ModelOnDevice
from vitonprep.errors import InputError, NoPersonError

__all__ = ["DensePoseResult", "check_rgb", "scale_boxes_to_photo", "paste_instances", "result_from_outputs"]


@dataclass(frozen=True, eq=False)
class DensePoseResult:
    """Full-resolution DensePose chart result of one photo.

    ``parts``: HxW uint8, fine-segmentation index I (0 = background, 1..24). ``u``, ``v``: HxW float32 chart
    coordinates where ``parts > 0`` (0 elsewhere). ``boxes``: (N, 4) float32 XYXY in photo pixels and
    ``scores`` (N,), best first, of the instances drawn.
    """

    parts: np.ndarray
    u: np.ndarray
    v: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray

    def iuv(self) -> np.ndarray:
        """HxWx3 uint8 (I, 255*U, 255*V), the array detectron2's IUV visualisers draw (values clipped to 0..255)."""
        return np.stack([self.parts, _to_u8(self.u * 255.0), _to_u8(self.v * 255.0)], axis=-1)


def _to_u8(x: np.ndarray) -> np.ndarray:
    # torch's float -> uint8 cast truncates, as detectron2's `.type(torch.uint8)` does
    return np.clip(x, 0, 255).astype(np.uint8)


def scale_boxes_to_photo(boxes: torch.Tensor, input_hw: tuple[int, int],
                         photo_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """detectron2 ``detector_postprocess``: scale, clip, drop empty boxes; returns the boxes and the kept mask."""
    (ih, iw), (ph, pw) = input_hw, photo_hw
    boxes = boxes.clone()
    boxes[:, 0::2] *= pw / iw
    boxes[:, 1::2] *= ph / ih
    boxes = clip_boxes(boxes, ph, pw)
    keep = nonempty(boxes)
    return boxes[keep], keep


def paste_instances(boxes: torch.Tensor, coarse_segm: torch.Tensor, fine_segm: torch.Tensor, u: torch.Tensor,
                    v: torch.Tensor, photo_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """I, U, V maps of the photo from per-box outputs (detectron2 ``densepose_chart_predictor_output_to_result``
    per instance, drawn in order where I > 0 as ``DensePoseResultsVisualizer`` does on one canvas)."""
    h_img, w_img = photo_hw
    parts = np.zeros((h_img, w_img), np.uint8)
    u_map = np.zeros((h_img, w_img), np.float32)
    v_map = np.zeros((h_img, w_img), np.float32)
    xywh = boxes.clone()
    xywh[:, 2] -= xywh[:, 0]
    xywh[:, 3] -= xywh[:, 1]
    for i, (x, y, w, h) in enumerate(xywh.long().tolist()):
        if w <= 0 or h <= 0:  # the visualiser draws nothing for a box narrower than one pixel
            continue
        coarse = F.interpolate(coarse_segm[i:i + 1], (h, w), mode="bilinear", align_corners=False).argmax(dim=1)
        labels = (F.interpolate(fine_segm[i:i + 1], (h, w), mode="bilinear", align_corners=False).argmax(dim=1)
                  * (coarse > 0).long())[0]
        u_box = F.interpolate(u[i:i + 1], (h, w), mode="bilinear", align_corners=False)[0]
        v_box = F.interpolate(v[i:i + 1], (h, w), mode="bilinear", align_corners=False)[0]
        idx = labels[None]
        u_sel = torch.gather(u_box, 0, idx)[0].to(torch.float32)
        v_sel = torch.gather(v_box, 0, idx)[0].to(torch.float32)
        # clipped boxes give x + w <= W; the crop only guards against float32 rounding at the border
        hh, ww = min(h, h_img - y), min(w, w_img - x)
        lab = labels.numpy()[:hh, :ww].astype(np.uint8)
        fg = lab > 0
        sl = np.s_[y:y + hh, x:x + ww]
        parts[sl][fg] = lab[fg]
        u_map[sl][fg] = u_sel.numpy()[:hh, :ww][fg]
        v_map[sl][fg] = v_sel.numpy()[:hh, :ww][fg]
    return parts, u_map, v_map


def check_rgb(image: np.ndarray) -> np.ndarray:
    rgb = np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise TypeError(f"DensePose R-CNN needs the HxWx3 uint8 RGB photo, got {rgb.dtype} {rgb.shape} "
                        "(a parse or label map is not enough)")
    return rgb


def result_from_outputs(boxes: torch.Tensor, scores: torch.Tensor, out: Any, input_hw: tuple[int, int],
            photo_hw: tuple[int, int]) -> DensePoseResult:
    """Shared by both implementations: detector_postprocess, then paste. ``out`` has coarse_segm/fine_segm/u/v.
    Pasting runs on the CPU whatever the model's device (a no-op move there)."""
    boxes, scores = boxes.cpu(), scores.cpu()
    if out is None or len(boxes) == 0:
        raise NoPersonError("DensePose found no person with a score above the threshold")
    boxes, keep = scale_boxes_to_photo(boxes, input_hw, photo_hw)
    if len(boxes) == 0:
        raise NoPersonError("DensePose found no person with a non-empty box")
    parts, u, v = paste_instances(boxes, out.coarse_segm.cpu()[keep], out.fine_segm.cpu()[keep], out.u.cpu()[keep],
                                  out.v.cpu()[keep], photo_hw)
    return DensePoseResult(parts, u, v, boxes.numpy().astype(np.float32), scores[keep].numpy())


class DensePosePredictor(ModelOnDevice):
    """What the two DensePose R-CNN implementations share: the model ``setup()`` loads into ``model``, and the
    back-end calls through their ``predict``/``predict_batch`` (part maps; a sample's InputError in its place)."""

    MODEL_ATTR = "model"
    model: Any = None

    def predict(self, image: np.ndarray) -> DensePoseResult:  # pragma: no cover - each implementation defines it
        raise NotImplementedError

    def predict_batch(self, images: list[np.ndarray]) -> list[Any]:  # pragma: no cover - idem
        raise NotImplementedError

    def close(self) -> None:
        self.model = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.predict(image).parts

    def call_batch(self, images: list[np.ndarray]) -> list[Any]:
        """``[self(image) for image in images]`` in batched forwards; a sample's InputError (no person) is returned
        in its place instead of raised."""
        return [r if isinstance(r, InputError) else r.parts for r in self.predict_batch(images)]
