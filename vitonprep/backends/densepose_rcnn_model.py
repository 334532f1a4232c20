"""DensePose R-CNN R50-FPN (detectron2 ``densepose_rcnn_R_50_FPN_s1x``) on plain PyTorch + torchvision.ops.

The network of ``Base-DensePose-RCNN-FPN.yaml`` + ``densepose_rcnn_R_50_FPN_s1x.yaml`` at inference time:

* ResNet-50 (MSRA layout: stride in the first 1x1 conv, frozen BatchNorm), FPN p2..p5 plus p6 = max-pool(p5);
* RPN: one 3x3 conv, 3 anchors (ratios 0.5, 1, 2) of one size per level (32..512), top 1000 per level before
  NMS 0.7, 1000 kept;
* box head: ROIAlign 7x7 (legacy alignment, 2 samples per bin) on p2..p5 by box size, two FC 1024, softmax over
  (person, background), class-specific box deltas (weights 10, 10, 5, 5), NMS 0.5, at most 100 boxes;
* DensePose: Panoptic-FPN decoder (p2..p5 -> one 256-channel map at stride 4), ROIAlign 28x28, eight 3x3 convs
  of 512, four 4x4 stride-2 transposed convs (coarse segmentation 2, fine segmentation 25, U 25, V 25), x2
  bilinear up-sampling -> 112x112 per box.

Module and parameter names equal detectron2's, so the official state dict loads key for key. Numerics follow
detectron2 exactly, including its dtype quirks (they matter for bit-level parity): box deltas are decoded in
float32 whatever the model dtype (``Box2BoxTransform.apply_deltas``), NMS sees float32 boxes
(``detectron2.layers.batched_nms``), ROI boxes are cast to the feature dtype before ROIAlign, and the pixel
mean is a float32 constant. In float64 the port equals detectron2 bit for bit at every stage
(``tests/test_backend_densepose_rcnn.py``).

One architecture, one file (over 400 lines on purpose): backbone, RPN, box head and DensePose head are read
together against detectron2's configs, and no other model shares their layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, roi_align

__all__ = ["DensePoseRCNNConfig", "DensePoseRCNN", "Detections", "DensePoseOutputs", "decode_boxes"]

#: log(1000 / 16): detectron2's clamp on dw, dh before exp
_SCALE_CLAMP = math.log(1000.0 / 16)


@dataclass(frozen=True)
class DensePoseRCNNConfig:
    """Inference settings (detectron2 config names in the comments); defaults are the s1x model's."""

    pixel_mean_bgr: tuple[float, float, float] = (103.530, 116.280, 123.675)  # MODEL.PIXEL_MEAN
    pixel_std_bgr: tuple[float, float, float] = (1.0, 1.0, 1.0)  # MODEL.PIXEL_STD
    size_divisibility: int = 32  # FPN backbone
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)  # ANCHOR_GENERATOR.SIZES
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # ANCHOR_GENERATOR.ASPECT_RATIOS
    rpn_pre_nms_topk: int = 1000  # RPN.PRE_NMS_TOPK_TEST (per level)
    rpn_post_nms_topk: int = 1000  # RPN.POST_NMS_TOPK_TEST
    rpn_nms_thresh: float = 0.7  # RPN.NMS_THRESH
    score_thresh: float = 0.8  # ROI_HEADS.SCORE_THRESH_TEST (apply_net --min_score)
    nms_thresh: float = 0.5  # ROI_HEADS.NMS_THRESH_TEST
    detections_per_image: int = 100  # TEST.DETECTIONS_PER_IMAGE
    box_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)  # ROI_BOX_HEAD.BBOX_REG_WEIGHTS
    box_pooler_resolution: int = 7
    box_pooler_sampling_ratio: int = 2
    dp_pooler_resolution: int = 28
    dp_pooler_sampling_ratio: int = 2
    dp_up_scale: int = 2  # ROI_DENSEPOSE_HEAD.UP_SCALE


# ------------------------------------------------------------------------------------------------ backbone


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, all four stored as buffers (detectron2 layout)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: Tensor) -> Tensor:
        # detectron2 uses this fused op whenever no gradient is needed (always, here)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class ConvNorm(nn.Conv2d):
    """detectron2 ``Conv2d(..., norm=FrozenBN)``: the norm is a child named ``norm``, no conv bias."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.norm = FrozenBatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(super().forward(x))


class BasicStem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvNorm(3, 64, 7, stride=2, padding=3)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(F.relu_(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class Bottleneck(nn.Module):
    """MSRA bottleneck: the stride sits on the first 1x1 conv (RESNETS.STRIDE_IN_1X1 = True)."""

    def __init__(self, cin: int, cmid: int, cout: int, stride: int):
        super().__init__()
        self.shortcut = ConvNorm(cin, cout, 1, stride=stride) if cin != cout else None
        self.conv1 = ConvNorm(cin, cmid, 1, stride=stride)
        self.conv2 = ConvNorm(cmid, cmid, 3, padding=1)
        self.conv3 = ConvNorm(cmid, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu_(out)


class ResNet50(nn.Module):
    """``backbone.bottom_up``: stem + res2..res5, returns the four stage outputs."""

    STAGES = (("res2", 3, 64, 256, 1), ("res3", 4, 128, 512, 2), ("res4", 6, 256, 1024, 2), ("res5", 3, 512, 2048, 2))

    def __init__(self) -> None:
        super().__init__()
        self.stem = BasicStem()
        cin = 64
        for name, depth, cmid, cout, stride in self.STAGES:
            blocks = [Bottleneck(cin if i == 0 else cout, cmid, cout, stride if i == 0 else 1) for i in range(depth)]
            self.add_module(name, nn.Sequential(*blocks))
            cin = cout

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.stem(x)
        out = {}
        for name, *_ in self.STAGES:
            x = getattr(self, name)(x)
            out[name] = x
        return out


class FPN(nn.Module):
    """``backbone``: lateral 1x1 + output 3x3 convs (with bias), nearest x2 top-down sum, p6 = max-pool(p5)."""

    def __init__(self) -> None:
        super().__init__()
        self.bottom_up = ResNet50()
        for level, cin in zip((2, 3, 4, 5), (256, 512, 1024, 2048), strict=False):
            self.add_module(f"fpn_lateral{level}", nn.Conv2d(cin, 256, 1))
            self.add_module(f"fpn_output{level}", nn.Conv2d(256, 256, 3, padding=1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        bottom_up = self.bottom_up(x)
        prev = self.fpn_lateral5(bottom_up["res5"])
        results = {"p5": self.fpn_output5(prev)}
        for level in (4, 3, 2):
            top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
            prev = getattr(self, f"fpn_lateral{level}")(bottom_up[f"res{level}"]) + top_down
            results[f"p{level}"] = getattr(self, f"fpn_output{level}")(prev)
        results["p6"] = F.max_pool2d(results["p5"], kernel_size=1, stride=2, padding=0)
        return {k: results[k] for k in ("p2", "p3", "p4", "p5", "p6")}


# ------------------------------------------------------------------------------------------------ boxes


def decode_boxes(deltas: Tensor, boxes: Tensor, weights: tuple[float, float, float, float]) -> Tensor:
    """detectron2 ``Box2BoxTransform.apply_deltas``: (N, k*4) deltas on (N, 4) XYXY boxes, in float32."""
    deltas = deltas.float()  # detectron2 decodes in float32 whatever the model dtype
    boxes = boxes.to(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=_SCALE_CLAMP)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=_SCALE_CLAMP)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = torch.exp(dw) * widths[:, None]
    pred_h = torch.exp(dh) * heights[:, None]
    x1 = pred_ctr_x - 0.5 * pred_w
    y1 = pred_ctr_y - 0.5 * pred_h
    x2 = pred_ctr_x + 0.5 * pred_w
    y2 = pred_ctr_y + 0.5 * pred_h
    return torch.stack((x1, y1, x2, y2), dim=-1).reshape(deltas.shape)


def clip_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    return torch.stack((boxes[:, 0].clamp(min=0, max=width), boxes[:, 1].clamp(min=0, max=height),
                        boxes[:, 2].clamp(min=0, max=width), boxes[:, 3].clamp(min=0, max=height)), dim=-1)


def nonempty(boxes: Tensor, threshold: float = 0.0) -> Tensor:
    return ((boxes[:, 2] - boxes[:, 0]) > threshold) & ((boxes[:, 3] - boxes[:, 1]) > threshold)


def _nms(boxes: Tensor, scores: Tensor, groups: Tensor, thresh: float) -> Tensor:
    # detectron2.layers.batched_nms casts the boxes to float32; torchvision's NMS then needs float32 scores too
    # (detectron2 itself cannot run NMS on float64 scores; the parity fixtures wrap it the same way). A no-op for
    # a float32 model.
    return batched_nms(boxes.float(), scores.float(), groups, thresh)


def _cell_anchors(size: int, ratios: tuple[float, ...]) -> Tensor:
    anchors = []
    area = float(size) ** 2
    for ratio in ratios:
        w = math.sqrt(area / ratio)
        h = ratio * w
        anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(anchors)


class RPN(nn.Module):
    """``proposal_generator``: StandardRPNHead + anchors + proposal selection (test-time settings)."""

    STRIDES = (4, 8, 16, 32, 64)

    def __init__(self, cfg: DensePoseRCNNConfig):
        super().__init__()
        self.cfg = cfg
        self.rpn_head = nn.Module()
        num_anchors = len(cfg.aspect_ratios)
        self.rpn_head.conv = nn.Conv2d(256, 256, 3, padding=1)
        self.rpn_head.objectness_logits = nn.Conv2d(256, num_anchors, 1)
        self.rpn_head.anchor_deltas = nn.Conv2d(256, num_anchors * 4, 1)
        # cell anchors follow the module's dtype (detectron2 keeps them in a non-persistent BufferList)
        for i, size in enumerate(cfg.anchor_sizes):
            self.register_buffer(f"cell_anchors_{i}", _cell_anchors(size, cfg.aspect_ratios), persistent=False)

    def anchors(self, features: list[Tensor]) -> list[Tensor]:
        out = []
        for i, (feat, stride) in enumerate(zip(features, self.STRIDES, strict=False)):
            h, w = feat.shape[-2:]
            shifts_x = torch.arange(0, w * stride, step=stride, dtype=torch.float32, device=feat.device)
            shifts_y = torch.arange(0, h * stride, step=stride, dtype=torch.float32, device=feat.device)
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            base = getattr(self, f"cell_anchors_{i}")
            out.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))
        return out

    def head(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Objectness logits (Hi*Wi*A,) and deltas (Hi*Wi*A, 4) per level, anchor order (y, x, a)."""
        logits, deltas = [], []
        for x in features:
            t = F.relu(self.rpn_head.conv(x))
            lg = self.rpn_head.objectness_logits(t)
            dl = self.rpn_head.anchor_deltas(t)
            logits.append(lg.permute(0, 2, 3, 1).flatten(1)[0])
            n, _, h, w = dl.shape
            deltas.append(dl.view(n, -1, 4, h, w).permute(0, 3, 4, 1, 2).flatten(1, -2)[0])
        return logits, deltas

    def forward(self, features: list[Tensor], image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Proposals (<= post_nms_topk, 4, float32 XYXY) and their objectness logits, best first."""
        cfg = self.cfg
        logits, deltas = self.head(features)
        anchors = self.anchors(features)
        boxes_all, scores_all, levels = [], [], []
        for level, (lg, dl, an) in enumerate(zip(logits, deltas, anchors, strict=False)):
            proposals = decode_boxes(dl, an, (1.0, 1.0, 1.0, 1.0))
            k = min(lg.shape[0], cfg.rpn_pre_nms_topk)
            top_scores, top_idx = lg.topk(k)
            boxes_all.append(proposals[top_idx])
            scores_all.append(top_scores)
            levels.append(torch.full((k,), level, dtype=torch.int64, device=lg.device))
        boxes, scores, lvl = torch.cat(boxes_all), torch.cat(scores_all), torch.cat(levels)
        # masked unconditionally: `if not valid.all()` would wait for the GPU (and cannot run on meta tensors)
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
        boxes, scores, lvl = boxes[valid], scores[valid], lvl[valid]
        boxes = clip_boxes(boxes, *image_size)
        keep = nonempty(boxes)
        boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
        keep = _nms(boxes, scores, lvl, cfg.rpn_nms_thresh)[: cfg.rpn_post_nms_topk]
        return boxes[keep], scores[keep]


def _pooler_rois(boxes: Tensor, dtype: torch.dtype) -> Tensor:
    """(M, 5) ROIs for one image: batch index 0 + XYXY, cast to the feature dtype as detectron2's ROIAlign does."""
    return torch.cat([torch.zeros((boxes.shape[0], 1), dtype=boxes.dtype, device=boxes.device), boxes],
                     dim=1).to(dtype)


def multilevel_roi_align(features: list[Tensor], boxes: Tensor, output: int, sampling_ratio: int) -> Tensor:
    """detectron2 ``ROIPooler`` over p2..p5 with legacy ROIAlign: level = floor(4 + log2(sqrt(area) / 224))."""
    sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    levels = torch.floor(4 + torch.log2(sizes / 224 + 1e-8)).clamp(min=2, max=5).to(torch.int64) - 2
    rois = _pooler_rois(boxes, features[0].dtype)
    out = torch.zeros((boxes.shape[0], features[0].shape[1], output, output), dtype=features[0].dtype,
                      device=features[0].device)
    for level, feat in enumerate(features):
        inds = torch.nonzero(levels == level, as_tuple=True)[0]
        out.index_put_((inds,), roi_align(feat, rois[inds], output, 1.0 / 2 ** (level + 2), sampling_ratio, False))
    return out


# ------------------------------------------------------------------------------------------------ ROI heads


class BoxHead(nn.Module):
    """``roi_heads.box_head``: FastRCNNConvFCHead with two FC layers of 1024."""

    def __init__(self, resolution: int = 7):
        super().__init__()
        self.fc1 = nn.Linear(256 * resolution * resolution, 1024)
        self.fc2 = nn.Linear(1024, 1024)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc2(F.relu(self.fc1(torch.flatten(x, start_dim=1)))))


class BoxPredictor(nn.Module):
    """``roi_heads.box_predictor``: 2 class logits (person, background) and 4 class-specific deltas."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_score = nn.Linear(1024, 2)
        self.bbox_pred = nn.Linear(1024, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


class _ConvReLU(nn.Conv2d):
    """detectron2 ``Conv2d(..., activation=F.relu)``: the ReLU lives inside the conv, so it takes no index."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(super().forward(x))


class Decoder(nn.Module):
    """``roi_heads.decoder``: Panoptic-FPN semantic head merging p2..p5 into one stride-4, 256-channel map."""

    def __init__(self) -> None:
        super().__init__()
        for level in (2, 3, 4, 5):
            ops: list[nn.Module] = []
            for _ in range(max(1, level - 2)):
                ops.append(_ConvReLU(256, 256, 3, padding=1))
                if level != 2:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(f"p{level}", nn.Sequential(*ops))
        self.predictor = nn.Conv2d(256, 256, 1)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = self.p2(features[0])
        for level, feat in zip((3, 4, 5), features[1:], strict=False):
            x = x + getattr(self, f"p{level}")(feat)
        return self.predictor(x)


class DensePoseHead(nn.Module):
    """``roi_heads.densepose_head``: DensePoseV1ConvXHead, eight 3x3 convs of 512 with ReLU."""

    def __init__(self) -> None:
        super().__init__()
        for i in range(8):
            self.add_module(f"body_conv_fcn{i + 1}", nn.Conv2d(256 if i == 0 else 512, 512, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        for i in range(8):
            x = F.relu(getattr(self, f"body_conv_fcn{i + 1}")(x))
        return x


@dataclass
class DensePoseOutputs:
    """Per box, 112x112 (DensePoseChartPredictorOutput): coarse (N,2), fine (N,25), u (N,25), v (N,25)."""

    coarse_segm: Tensor
    fine_segm: Tensor
    u: Tensor
    v: Tensor


class DensePosePredictor(nn.Module):
    """``roi_heads.densepose_predictor``: DensePoseChartPredictor (4x4 stride-2 deconvs, then x2 bilinear)."""

    def __init__(self, up_scale: int = 2):
        super().__init__()
        self.up_scale = up_scale
        self.ann_index_lowres = nn.ConvTranspose2d(512, 2, 4, stride=2, padding=1)
        self.index_uv_lowres = nn.ConvTranspose2d(512, 25, 4, stride=2, padding=1)
        self.u_lowres = nn.ConvTranspose2d(512, 25, 4, stride=2, padding=1)
        self.v_lowres = nn.ConvTranspose2d(512, 25, 4, stride=2, padding=1)

    def _up(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.up_scale, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> DensePoseOutputs:
        return DensePoseOutputs(self._up(self.ann_index_lowres(x)), self._up(self.index_uv_lowres(x)),
                                self._up(self.u_lowres(x)), self._up(self.v_lowres(x)))


class ROIHeads(nn.Module):
    def __init__(self, cfg: DensePoseRCNNConfig):
        super().__init__()
        self.box_head = BoxHead(cfg.box_pooler_resolution)
        self.box_predictor = BoxPredictor()
        self.decoder = Decoder()
        self.densepose_head = DensePoseHead()
        self.densepose_predictor = DensePosePredictor(cfg.dp_up_scale)


# ------------------------------------------------------------------------------------------------ model


@dataclass
class Detections:
    """Kept persons, best first, in the coordinates of the network input (the resized image)."""

    boxes: Tensor  # (N, 4) float32 XYXY
    scores: Tensor  # (N,)


class DensePoseRCNN(nn.Module):
    """The whole model; ``state_dict()`` keys equal those of detectron2's ``GeneralizedRCNN`` for this config.

    Each step is a method so that parity tests can feed one step the original's inputs:
    ``features`` -> ``proposals`` -> ``box_outputs`` -> ``detect`` -> ``densepose``.
    """

    def __init__(self, cfg: DensePoseRCNNConfig | None = None):
        super().__init__()
        self.cfg = cfg or DensePoseRCNNConfig()
        self.backbone = FPN()
        self.proposal_generator = RPN(self.cfg)
        self.roi_heads = ROIHeads(self.cfg)

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.fpn_output2.weight.dtype

    def preprocess(self, image_bgr: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """(3, H, W) BGR 0..255 -> normalised (1, 3, H', W') padded with zeros to a multiple of 32, and (H, W)."""
        # detectron2 keeps the mean/std as float32 buffers (103.53 -> 103.529998...), also in a float64 model
        dev = image_bgr.device
        mean = torch.tensor(self.cfg.pixel_mean_bgr, dtype=torch.float32, device=dev).to(self.dtype).view(3, 1, 1)
        std = torch.tensor(self.cfg.pixel_std_bgr, dtype=torch.float32, device=dev).to(self.dtype).view(3, 1, 1)
        x = (image_bgr - mean) / std
        h, w = x.shape[-2:]
        d = self.cfg.size_divisibility
        ph, pw = (h + d - 1) // d * d, (w + d - 1) // d * d
        return F.pad(x, (0, pw - w, 0, ph - h), value=0.0)[None], (int(h), int(w))

    def features(self, x: Tensor) -> dict[str, Tensor]:
        return self.backbone(x)

    def proposals(self, features: dict[str, Tensor], image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        return self.proposal_generator([features[f"p{i}"] for i in range(2, 7)], image_size)

    def box_outputs(self, features: dict[str, Tensor], proposals: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits (R, 2) and box deltas (R, 4) of the proposals."""
        cfg = self.cfg
        pooled = multilevel_roi_align([features[f"p{i}"] for i in range(2, 6)], proposals,
                                      cfg.box_pooler_resolution, cfg.box_pooler_sampling_ratio)
        return self.roi_heads.box_predictor(self.roi_heads.box_head(pooled))

    def detect(self, logits: Tensor, deltas: Tensor, proposals: Tensor, image_size: tuple[int, int]) -> Detections:
        """detectron2 ``fast_rcnn_inference_single_image`` for one class."""
        cfg = self.cfg
        boxes = decode_boxes(deltas, proposals, cfg.box_reg_weights)
        scores = F.softmax(logits, dim=-1)
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
        boxes, scores = boxes[valid], scores[valid]  # unconditionally, as in the RPN
        scores = scores[:, 0]
        boxes = clip_boxes(boxes, *image_size)
        keep = scores > cfg.score_thresh
        boxes, scores = boxes[keep], scores[keep]
        keep = _nms(boxes, scores, torch.zeros(len(scores), dtype=torch.int64, device=scores.device), cfg.nms_thresh)
        keep = keep[: cfg.detections_per_image]
        return Detections(boxes[keep], scores[keep])

    def densepose(self, features: dict[str, Tensor], boxes: Tensor) -> DensePoseOutputs:
        merged = self.roi_heads.decoder([features[f"p{i}"] for i in range(2, 6)])
        return self._densepose_on(merged, boxes)

    def _densepose_on(self, merged: Tensor, boxes: Tensor) -> DensePoseOutputs:
        """The DensePose head on the decoder's map (1, 256, H/4, W/4) of one image."""
        cfg = self.cfg
        heads = self.roi_heads
        pooled = roi_align(merged, _pooler_rois(boxes, merged.dtype), cfg.dp_pooler_resolution, 0.25,
                           cfg.dp_pooler_sampling_ratio, False)
        return heads.densepose_predictor(heads.densepose_head(pooled))

    @torch.inference_mode()
    def forward(self, image_bgr: Tensor) -> tuple[Detections, DensePoseOutputs | None]:
        return self.forward_batch(image_bgr[None])[0]

    @torch.inference_mode()
    def forward_batch(self, images_bgr: Tensor) -> list[tuple[Detections, DensePoseOutputs | None]]:
        """(N, 3, H, W) BGR 0..255 images of one size: one backbone and decoder pass for the batch, then the
        per-image heads (proposals, boxes and DensePose ROIs differ per image). Every tensor stays on the input's
        device."""
        xs = [self.preprocess(img.to(self.dtype)) for img in images_bgr]
        size = xs[0][1]
        batch = self.features(torch.cat([x for x, _ in xs]))
        dets = []
        for i in range(len(xs)):
            feats = {k: v[i:i + 1] for k, v in batch.items()}
            proposals, _ = self.proposals(feats, size)
            logits, deltas = self.box_outputs(feats, proposals)
            dets.append(self.detect(logits, deltas, proposals, size))
        if all(len(det.boxes) == 0 for det in dets):  # nobody: the decoder is not needed
            return [(det, None) for det in dets]
        merged = self.roi_heads.decoder([batch[f"p{i}"] for i in range(2, 6)])
        return [(det, None if len(det.boxes) == 0 else self._densepose_on(merged[i:i + 1], det.boxes))
                for i, det in enumerate(dets)]
