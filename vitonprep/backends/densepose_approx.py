"""Approximate DensePose fine-segmentation map from a CIHP parse and BODY_25 keypoints (no model).

The real ``image-densepose`` files of VITON-HD are the fine-segmentation index map I (0 = background, 1..24 =
parts) of detectron2 DensePose R50-FPN rendered through the PARULA colormap (`vitonprep.derive.densepose`). This
back-end produces an *approximate* I map from inputs that are already available without DensePose: the CIHP
human parse (``image-parse-v3``) and the OpenPose BODY_25 keypoints. It is a geometric heuristic, not a
reproduction of the network, hence ``APPROXIMATE = True``.

Part indices (detectron2 ``densepose_base``; right/left are the person's)::

    1, 2 torso            3 right hand        4 left hand        5 left foot         6 right foot
    7, 9 upper leg right  8, 10 upper leg left  11, 13 lower leg right  12, 14 lower leg left
    15, 17 upper arm left  16, 18 upper arm right  19, 21 lower arm left  20, 22 lower arm right
    23, 24 head

Choices, measured on the real render of VITON-HD ``00006_00`` (a frontal person):

* Foreground = every CIHP label except background, shrunk by about H/256 px (DensePose's silhouette lies a few
  pixels inside CIHP's). Hair and hat are kept only where they are farther than ~0.066 x shoulder width from the
  background: DensePose's head covers the face and the inner part of the hair, not its outer volume.
* Head = face, sunglasses, (inner) hair/hat and the part of the neck skin within ~0.15 x shoulder width of the
  face; split into 23 (the person's right half, the image-left half of a frontal face) and 24 along the line
  through the mid-point between the eyes (ears, nose/neck as fall-backs) perpendicular to the eye line.
* Torso = 2 (the index DensePose uses for a frontal torso; 1 only appears as a thin rim in the real render).
  It covers clothing and neck skin down to a V-shaped pelvis boundary below the hip line: DensePose's torso
  reaches the hip joints laterally and the crotch medially, so the top of trousers/skirts is torso.
* Arms: sleeves (upper clothes, dress, coat) become arm parts where they are closer to the shoulder-elbow-wrist
  chain than to the shoulder-hip torso quadrilateral (a dress below the pelvis boundary never does); arm skin
  (CIHP 14/15) always does.
  Upper vs lower arm = nearest of the two segments; hand = beyond the wrist. Each arm part is split lengthwise,
  as in the real render, into the side facing the torso (15/16 upper, 19/20 lower) and the outer side (17/18
  upper, 21/22 lower); the real proportion depends on the arm's rotation, so the split is half and half.
* Legs: trousers, skirt, dress and leg skin below the pelvis boundary; right/left = nearest hip-knee-ankle
  chain (CIHP's own side for leg skin), upper/lower = nearest segment; frontal indices 9/10 (upper, as in the
  render) and 13/14 (lower; by analogy -- the reference render shows no lower legs). Shoes -> feet (CIHP left
  shoe 18 -> 5, right shoe 19 -> 6), socks -> lower leg.
* Missing keypoints are synthesised from the others assuming an upright person with hanging arms and legs
  (e.g. a missing knee is placed 0.8 torso-lengths below the hip); hands are only labelled beyond a detected
  wrist.

Agreement with the real render of 00006_00 (keypoints read off its official OpenPose render): foreground IoU
0.947 (raw CIHP foreground: 0.923), accuracy over the 14 coarse part groups 0.920 and over the exact 24 indices
0.879 on pixels that are foreground in both. Most of the remaining error follows OpenPose's keypoints (on that
image the left elbow is ~50 px and the left wrist ~250 px too high).

Assumes a frontal, upright person (the VITON-HD setting); back views get frontal indices (a warning is logged
when the shoulders are mirrored).

Degenerate inputs: a parse without any person pixel returns an all-background (all-zero) map -- DensePose
renders nothing for an image without a person. A non-empty parse with no usable keypoint (all zero), or without
enough of them to place the torso (neck, both shoulders or both hips), raises `InputError`.

This module holds the back-end class, the algorithm and the per-pixel labeller; the body model (indices, tuning
constants, skeleton, geometry) is in `densepose_approx_body` and the region rules in `densepose_approx_regions`.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from vitonprep.backends.densepose_approx_body import (
    _ARM_MARGIN,
    _COAT,
    _DRESS,
    _GLOVE,
    _LARM,
    _LFOOT,
    _LLEG,
    _LSHOE,
    _NECK_SKIN,
    _PANTS,
    _RARM,
    _RFOOT,
    _RLEG,
    _RSHOE,
    _SCARF,
    _SKIRT,
    _SOCKS,
    _TORSO,
    _UPPER,
    _ArmDistances,
    _check_parse,
    _check_pose,
    _isin,
    _rows_cols,
    _Skeleton,
    _torso_edge_distance,
    _torso_quad_map,
)
from vitonprep.backends.densepose_approx_regions import (
    _arm_parts,
    _below_pelvis,
    _fg_shrink_radius,
    _foreground,
    _head_mask,
    _leg_parts,
    _nearest_arm_parts,
    _split_arms_map,
    _split_head,
)
from vitonprep.backends.protocols import Backend
from vitonprep.backends.results import PoseResult
from vitonprep.errors import InputError

logger = logging.getLogger(__name__)

NAME = "densepose-approx-parse"
APPROXIMATE = True

__all__ = ["NAME", "APPROXIMATE", "ApproxDensePose", "approximate_densepose_parts"]


class ApproxDensePose(Backend):
    """``densepose-approx-parse``: `approximate_densepose_parts` behind the back-end protocol (reads parse + pose)."""

    NAME = NAME
    KIND = "densepose"
    APPROXIMATE = APPROXIMATE
    LICENCE = "vitonprep (no model)"
    READS = ("parse", "pose")

    @property
    def note(self) -> str:
        return "DensePose part indices approximated from parse + pose"

    def __call__(self, parse: np.ndarray, pose: PoseResult) -> np.ndarray:
        return approximate_densepose_parts(parse, pose.keypoints.pose)


def approximate_densepose_parts(parse: np.ndarray, pose25: np.ndarray) -> np.ndarray:
    """Approximate DensePose part-index map (HxW uint8, 0 = background, 1..24 = parts).

    ``parse``: HxW integer CIHP label map (0..19). ``pose25``: BODY_25 keypoints, shape (25, 3) as
    (x, y, confidence) in pixels of ``parse``; a joint is missing when its confidence is 0 or x = y = 0.

    Speed: the work is done inside the person's bounding box (plus a margin that keeps the erosion and the
    distance transforms exact). The foreground and the head region are computed at full resolution; the
    per-pixel part rules (distances to skeleton segments) run on the top-left pixel of every 2x2 block, and
    the other pixels of the block take its part when they have the same CIHP label and head flag. The other
    foreground pixels (silhouette and label edges) are labelled individually, so the silhouette is exact and
    every rule tied to a CIHP label (arm skin -> arm of its side, shoes -> feet, ...) holds on every pixel.
    The arms' inner/outer split is made on the full-resolution result.
    """
    parse = _check_parse(parse)
    pose = _check_pose(pose25)
    h, w = parse.shape
    out = np.zeros((h, w), np.uint8)
    person_full = parse > 0  # _check_parse guarantees labels 0..19
    if not person_full.any():
        logger.debug("empty parse: returning an all-background DensePose map")
        return out

    valid = (pose[:, 2] > 0) & ~((pose[:, 0] == 0) & (pose[:, 1] == 0))
    if not valid.any():
        raise InputError("pose25 has no valid keypoint (all confidences or coordinates are zero)")

    # person bounding box plus a margin: >= the erosion radius and >= 2 background pixels for the chamfer
    # distance transform (its steps move at most 2 px), so the crop changes no value inside the box.
    bx, by, bw, bh = cv2.boundingRect(person_full.view(np.uint8))
    m = _fg_shrink_radius(h) + 3
    x0, y0, x1, y1 = max(0, bx - m), max(0, by - m), min(w, bx + bw + m), min(h, by + bh + m)
    parse_c = parse[y0:y1, x0:x1]
    person = person_full[y0:y1, x0:x1]
    sk = _Skeleton(pose, valid, person)

    fg = _foreground(parse_c, person, sk.scale, h)
    head = _head_mask(parse_c, fg, sk.scale)
    labeller = _PixelLabeller(sk, (x0, y0), fg.shape)
    ch, cw = fg.shape
    # CIHP label (< 32) and head flag in one code; 0 = not foreground
    code = np.ascontiguousarray(parse_c) | (head.view(np.uint8) << 5)
    code[~fg] = 0

    # 1. the top-left pixel of every 2x2 block
    rep_code = np.ascontiguousarray(code[::2, ::2])
    flat = np.flatnonzero(rep_code)
    ry, rx = _rows_cols(flat, rep_code.shape[1])
    rc = rep_code.ravel()[flat]
    rep = np.zeros(rep_code.shape, np.uint8)
    rep.ravel()[flat] = labeller(rc & 31, 2 * rx, 2 * ry, rc > 31)
    # 2. block pixels with the representative's label and head flag take its part (nearest upsampling: an
    #    exact x2 resize maps pixel (y, x) to (y // 2, x // 2))
    rh, rw = rep_code.shape
    up_code = cv2.resize(rep_code, (2 * rw, 2 * rh), interpolation=cv2.INTER_NEAREST)[:ch, :cw]
    up_part = cv2.resize(rep, (2 * rw, 2 * rh), interpolation=cv2.INTER_NEAREST)[:ch, :cw]
    part = np.where(code == up_code, up_part, np.uint8(0))  # background: code 0 and part 0
    # 3. the remaining foreground pixels, one by one
    flat = np.flatnonzero((part == 0) & fg)
    if flat.size:
        ly, lx = _rows_cols(flat, cw)
        lc = code.ravel()[flat]
        part.ravel()[flat] = labeller(lc & 31, lx, ly, lc > 31)

    _split_arms_map(part, (x0, y0), sk)
    out[y0:y1, x0:x1] = part
    return out


class _PixelLabeller:
    """The per-pixel part rules: CIHP label + position (+ head flag) -> DensePose part (never 0).

    Called with integer crop coordinates; ``origin`` = (x0, y0) of the crop in the image, ``shape`` its size.
    The inner/outer split of the arm parts is not made here (see `_split_arms_map`).
    """

    def __init__(self, sk: _Skeleton, origin: tuple[int, int], shape: tuple[int, int]) -> None:
        self.sk = sk
        self.origin = origin
        self.shape = shape
        self._quad_map: np.ndarray | None = None  # filled torso quadrilateral, drawn on first use

    def __call__(self, lab: np.ndarray, xi: np.ndarray, yi: np.ndarray, is_head: np.ndarray) -> np.ndarray:
        sk = self.sk
        x0, y0 = self.origin
        px = (xi + x0).astype(np.float32)
        py = (yi + y0).astype(np.float32)
        part = np.zeros(lab.shape, np.uint8)

        # --- head ---------------------------------------------------------------------------------------
        if is_head.any():
            part[is_head] = _split_head(px[is_head], py[is_head], sk)

        # --- shoes, socks -----------------------------------------------------------------------------------
        part[lab == _LSHOE] = _LFOOT
        part[lab == _RSHOE] = _RFOOT
        rest = part == 0

        # --- arm skin and gloves: always arm parts ------------------------------------------------------------
        for side, label in (("L", _LARM), ("R", _RARM)):
            sel = rest & (lab == label)
            if sel.any():
                part[sel] = _arm_parts(px[sel], py[sel], sk, side)
        sel = rest & (lab == _GLOVE)
        if sel.any():
            part[sel] = _nearest_arm_parts(px[sel], py[sel], sk)
        rest = part == 0

        # --- clothing that may be torso, sleeve or leg ---------------------------------------------------------
        upper_like = rest & _isin(lab, (_UPPER, _DRESS, _COAT))
        if upper_like.any():
            idx = np.flatnonzero(upper_like)
            margin = _ARM_MARGIN * sk.scale
            if self._quad_map is None:
                self._quad_map = _torso_quad_map(sk, self.origin, self.shape)
            in_quad = self._quad_map[yi[idx], xi[idx]] > 0
            if margin <= 0:
                # inside the quadrilateral d_torso = 0 and no distance is < 0: never a sleeve
                idx = idx[~in_quad]
                d_torso = _torso_edge_distance(px[idx], py[idx], sk)
            else:
                d_torso = _torso_edge_distance(px[idx], py[idx], sk)
                d_torso[in_quad] = 0.0
            arm = {side: _ArmDistances(px[idx], py[idx], sk, side) for side in ("R", "L")}
            is_arm = np.minimum(arm["R"].chain, arm["L"].chain) < d_torso + margin
            # the skirt of a dress hangs beside the forearms but is never a sleeve
            skirt = lab[idx] == _DRESS
            if skirt.any():
                skirt[skirt] = _below_pelvis(px[idx[skirt]], py[idx[skirt]], sk)
                is_arm &= ~skirt
            if is_arm.any():
                sel = np.flatnonzero(is_arm)
                right = arm["R"].chain[sel] <= arm["L"].chain[sel]
                parts = np.empty(sel.shape, np.uint8)
                if right.any():
                    parts[right] = arm["R"].parts(sel[right])
                if (~right).any():
                    parts[~right] = arm["L"].parts(sel[~right])
                part[idx[sel]] = parts
        rest = part == 0

        # Remaining torso-type and lower-body clothing / skin: torso above the pelvis boundary, legs below.
        trunk = rest & _isin(lab, (_UPPER, _DRESS, _COAT, _NECK_SKIN, _SCARF, _PANTS, _SKIRT, _LLEG, _RLEG, _SOCKS))
        if trunk.any():
            idx = np.flatnonzero(trunk)
            below = _below_pelvis(px[idx], py[idx], sk)
            legs_only = _isin(lab[idx], (_LLEG, _RLEG, _SOCKS))
            leg = below | legs_only
            part[idx[~leg]] = _TORSO
            li = idx[leg]
            if li.size:
                part[li] = _leg_parts(px[li], py[li], lab[li], sk)

        # Anything left (unexpected labels) -> torso, so the foreground is never punched with holes.
        part[part == 0] = _TORSO
        return part
