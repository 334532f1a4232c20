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
enough of them to place the torso (neck, both shoulders or both hips), raises ``ValueError``.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from vitonprep.backends.densepose_approx_body import (
    _ARM_MARGIN,
    _COAT,
    _DRESS,
    _FACE,
    _FG_SHRINK,
    _GLOVE,
    _HAIR,
    _HAIR_KEEP_DEPTH,
    _HAND,
    _HAND_T,
    _HAT,
    _HEAD_L,
    _HEAD_R,
    _LARM,
    _LARM_IN,
    _LARM_OUT,
    _LEAR,
    _LEYE,
    _LFOOT,
    _LLEG,
    _LLEG_PART,
    _LSHOE,
    _NECK_HEAD_DIST,
    _NECK_SKIN,
    _NOSE,
    _PANTS,
    _PELVIS_LATERAL,
    _PELVIS_MEDIAL,
    _RARM,
    _REAR,
    _REYE,
    _RFOOT,
    _RLEG,
    _RSHOE,
    _SCARF,
    _SKIRT,
    _SOCKS,
    _SUNGLASSES,
    _TORSO,
    _UARM_IN,
    _UARM_OUT,
    _ULEG,
    _UPPER,
    _ArmDistances,
    _chain_distance,
    _check_parse,
    _check_pose,
    _isin,
    _norm,
    _rows_cols,
    _segment,
    _Skeleton,
    _torso_edge_distance,
    _torso_quad_map,
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


# ---------------------------------------------------------------------------------------------------------------
# region rules


def _fg_shrink_radius(h: int) -> int:
    return int(round(_FG_SHRINK * h))


def _foreground(parse: np.ndarray, person: np.ndarray, scale: float, image_h: int | None = None) -> np.ndarray:
    """Person pixels minus the outer hair/hat volume, eroded by about H/256 (H = ``image_h``, default the
    height of ``parse``). ``parse`` may be a crop with >= 2 px of background around the person."""
    h = parse.shape[0] if image_h is None else image_h
    hairy = _isin(parse, (_HAT, _HAIR))
    fg = person.copy()
    if hairy.any():
        # Only hair pixels within `limit` of the background matter; a chamfer step moves at most as many
        # pixels (per axis) as its length, so the distance transform runs on the hair's bounding box plus
        # `limit` + 3 px (outside an image, OpenCV's distance transform sees no background).
        limit = _HAIR_KEEP_DEPTH * scale
        hh, ww = person.shape
        bx, by, bw, bh = cv2.boundingRect(hairy.view(np.uint8))
        pad = int(np.ceil(limit)) + 3
        x0, y0, x1, y1 = max(0, bx - pad), max(0, by - pad), min(ww, bx + bw + pad), min(hh, by + bh + pad)
        depth = cv2.distanceTransform(person[y0:y1, x0:x1].view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
        fg[y0:y1, x0:x1] &= ~(hairy[y0:y1, x0:x1] & (depth <= limit))
    r = _fg_shrink_radius(h)
    if r > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        fg = cv2.erode(fg.view(np.uint8), k, borderType=cv2.BORDER_REPLICATE).view(bool)
    return fg


def _head_mask(parse: np.ndarray, fg: np.ndarray, scale: float) -> np.ndarray:
    face = _isin(parse, (_FACE, _SUNGLASSES))
    head = _isin(parse, (_FACE, _SUNGLASSES, _HAIR, _HAT))
    neck = parse == _NECK_SKIN
    if face.any() and neck.any():
        # Only neck pixels within `limit` of the face matter. A chamfer step moves at most as many pixels
        # (per axis) as its length, so those distances are decided by face pixels within `limit` px of the
        # neck's bounding box: the distance transform runs on that window only.
        limit = _NECK_HEAD_DIST * scale
        hh, ww = parse.shape
        nx, ny, nw, nh = cv2.boundingRect(neck.view(np.uint8))
        pad = int(np.ceil(limit)) + 3
        x0, y0, x1, y1 = max(0, nx - pad), max(0, ny - pad), min(ww, nx + nw + pad), min(hh, ny + nh + pad)
        d = cv2.distanceTransform((~face[y0:y1, x0:x1]).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
        head[y0:y1, x0:x1] |= neck[y0:y1, x0:x1] & (d <= limit)
    return head & fg


def _split_head(px: np.ndarray, py: np.ndarray, sk: _Skeleton) -> np.ndarray:
    """23 on the person's right half of the head, 24 on the left half."""
    p = sk.p
    pair = None
    for r, left in ((_REYE, _LEYE), (_REAR, _LEAR)):
        if r in p and left in p and _norm(p[left] - p[r]) > 1:
            pair = (p[r], p[left])
            break
    if pair is not None:
        centre = (pair[0] + pair[1]) / 2
        lat = (pair[1] - pair[0]) / _norm(pair[1] - pair[0])
    else:
        centre = p.get(_NOSE, np.array([px.mean(), py.mean()]))
        lat = sk.lat
    s = (px - centre[0]) * lat[0] + (py - centre[1]) * lat[1]
    return np.where(s < 0, _HEAD_R, _HEAD_L).astype(np.uint8)


def _arm_parts(px: np.ndarray, py: np.ndarray, sk: _Skeleton, side: str) -> np.ndarray:
    """Upper arm / lower arm / hand of one side; arm parts get their inner index (see `_split_arms_map`)."""
    s, e, w = sk.arm(side)
    d1, _ = _segment(px, py, s, e)
    d2, t2 = _segment(px, py, e, w)
    upper = d1 <= d2
    out = np.where(upper, _UARM_IN[side], _LARM_IN[side]).astype(np.uint8)
    if sk.real_wrist[side]:
        out[~upper & (t2 > _HAND_T)] = _HAND[side]
    return out


_ARM_INNER = tuple(_UARM_IN.values()) + tuple(_LARM_IN.values())


def _split_arms_map(part_map: np.ndarray, origin: tuple[int, int], sk: _Skeleton) -> None:
    """Split every arm part of a C-contiguous 2-D part map (a crop at ``origin`` = (x0, y0)) lengthwise into its
    inner (torso-facing) and outer half, in place.

    The real render divides each arm part along the bone into the side facing the torso (15/16, 19/20) and the
    outer side (17/18, 21/22), but the proportion varies with the arm's rotation (17-96 % inner on 00006_00). The
    split is made at the median lateral offset of the part's own pixels, i.e. half and half.
    """
    flat_map = part_map.view()
    flat_map.shape = (-1,)  # a flat view (raises rather than copying if the map is not contiguous)
    width = part_map.shape[1]
    centre = (sk.neck + sk.midhip) / 2
    arm_idx = np.flatnonzero(_isin(part_map, _ARM_INNER))
    arm_part = flat_map[arm_idx]
    for side in ("R", "L"):
        s, e, w = sk.arm(side)
        for inner, outer, a, b in ((_UARM_IN[side], _UARM_OUT[side], s, e), (_LARM_IN[side], _LARM_OUT[side], e, w)):
            sel = arm_idx[arm_part == inner]
            if sel.size < 2:
                continue
            d = b - a
            n = _norm(d)
            if n < 1:
                continue
            nx, ny = -d[1] / n, d[0] / n  # unit normal of the bone
            if (centre[0] - a[0]) * nx + (centre[1] - a[1]) * ny < 0:
                nx, ny = -nx, -ny  # make the normal point towards the torso
            ys, xs = _rows_cols(sel, width)
            px = (xs + origin[0]).astype(np.float32)
            py = (ys + origin[1]).astype(np.float32)
            off = (px - a[0]) * nx + (py - a[1]) * ny
            flat_map[sel[off < np.median(off)]] = outer


def _nearest_arm_parts(px: np.ndarray, py: np.ndarray, sk: _Skeleton) -> np.ndarray:
    right = _chain_distance(px, py, sk.arm("R")) <= _chain_distance(px, py, sk.arm("L"))
    out = np.empty(px.shape, np.uint8)
    if right.any():
        out[right] = _arm_parts(px[right], py[right], sk, "R")
    if (~right).any():
        out[~right] = _arm_parts(px[~right], py[~right], sk, "L")
    return out


def _below_pelvis(px: np.ndarray, py: np.ndarray, sk: _Skeleton) -> np.ndarray:
    """True below the V-shaped DensePose torso/thigh boundary under the hip line."""
    hip_axis = sk.hip["L"] - sk.hip["R"]
    n = _norm(hip_axis)
    lat = hip_axis / n if n > 1 else sk.lat
    down = np.array([-lat[1], lat[0]])
    if down @ sk.down < 0:
        down = -down
    mid = (sk.hip["L"] + sk.hip["R"]) / 2
    ex, ey = px - mid[0], py - mid[1]
    u = np.abs(ex * lat[0] + ey * lat[1])
    v = ex * down[0] + ey * down[1]
    hw = sk.hip_w
    depth = hw * (_PELVIS_LATERAL + _PELVIS_MEDIAL * np.clip(1.0 - u / (hw / 2), 0.0, 1.0))
    return v > depth


def _leg_parts(px: np.ndarray, py: np.ndarray, lab: np.ndarray, sk: _Skeleton) -> np.ndarray:
    dr = {}
    for side in ("R", "L"):
        h, k, a = sk.leg(side)
        du, _ = _segment(px, py, h, k)
        dl, _ = _segment(px, py, k, a)
        dr[side] = (du, dl)
    right = np.minimum(*dr["R"]) <= np.minimum(*dr["L"])
    right = np.where(lab == _RLEG, True, np.where(lab == _LLEG, False, right))
    du = np.where(right, dr["R"][0], dr["L"][0])
    dl = np.where(right, dr["R"][1], dr["L"][1])
    upper = (du <= dl) & (lab != _SOCKS)
    return np.where(right, np.where(upper, _ULEG["R"], _LLEG_PART["R"]),
                    np.where(upper, _ULEG["L"], _LLEG_PART["L"])).astype(np.uint8)
