"""The region rules of `densepose_approx`: foreground and head masks, the head split, arm and leg parts.

Internal to `vitonprep.backends.densepose_approx` (split from it to keep each module readable).
"""

from __future__ import annotations

import cv2
import numpy as np

from vitonprep.backends.densepose_approx_body import (
    _FACE,
    _FG_SHRINK,
    _HAIR,
    _HAIR_KEEP_DEPTH,
    _HAND,
    _HAND_T,
    _HAT,
    _HEAD_L,
    _HEAD_R,
    _LARM_IN,
    _LARM_OUT,
    _LEAR,
    _LEYE,
    _LLEG,
    _LLEG_PART,
    _NECK_HEAD_DIST,
    _NECK_SKIN,
    _NOSE,
    _PELVIS_LATERAL,
    _PELVIS_MEDIAL,
    _REAR,
    _REYE,
    _RLEG,
    _SOCKS,
    _SUNGLASSES,
    _UARM_IN,
    _UARM_OUT,
    _ULEG,
    _chain_distance,
    _isin,
    _norm,
    _rows_cols,
    _segment,
    _Skeleton,
)


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
