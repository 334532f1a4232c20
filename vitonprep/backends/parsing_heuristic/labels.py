"""From colour classes to CIHP labels: hair anchored to the head, skin split into face / neck / arms / legs,
shoes left / right, pants or skirt, small pieces merged, labels fitted to the person mask."""

from __future__ import annotations

import cv2
import numpy as np

from vitonprep.backends.parsing_heuristic.body import Body
from vitonprep.backends.parsing_heuristic.colour import argbest, median0, quantile
from vitonprep.backends.parsing_heuristic.config import (
    C_HAIR,
    C_LOWER,
    C_SHOE,
    C_SKIN,
    C_UPPER,
    DRESS,
    FACE,
    HAIR,
    L_ARM,
    L_LEG,
    L_SHOE,
    NECK,
    PANTS,
    R_ARM,
    R_LEG,
    R_SHOE,
    SKIRT,
    UPPER,
    HeuristicParsingConfig,
)
from vitonprep.backends.parsing_heuristic.regions import Head, Limbs

HEM_MARGIN = 0.02  # fraction of the working height: garment rows below a pixel that make it "covered", and
# the rows above the hem where a leg may still start
MIN_PART_PX = 4  # pieces of at most this many pixels are always merged into their neighbours
# skirt test: leg skin below the hem covers at least this share of the garment's pixels and of the image rows
SKIRT_LEG_SHARE, SKIRT_LEG_ROWS = 0.02, 0.03
SKIRT_BAND = 0.2  # the split-between-the-legs test looks at this lowest fraction of the garment's height
HIP_MARGIN = 0.1  # ... between the hips widened by this many shoulder widths
# trousers: the garment's lowest row in the middle (within NOTCH_MID sw of the legs' midline) lies NOTCH sw above
# its median lowest row on both sides (NOTCH_SIDE sw from the midline); a dress on apart legs dips ~0.2 sw
NOTCH, NOTCH_MID, NOTCH_SIDE = 0.3, 0.1, (0.15, 0.5)
LEG_HEM_MARGIN, LEG_REACH = 0.05, 1.5  # below a skirt's hem by this many sw, within this many leg radii: leg
SHORTS_NOTCH = 0.05  # shorts on closed legs still end ~0.07 sw higher between the legs; skirts -0.05..0.01 (tuned)
# colour similarity of the upper and lower garment seeds (Bhattacharyya, coarse Lab cells) from which top and an
# unsplit bottom are one dress, per category of the pair (a prior: dresses are expected with "dresses")
DRESS_ALIKE = {"upper_body": 0.9, "lower_body": 0.9, "dresses": 0.6}


def assign_labels(cls: np.ndarray, mask: np.ndarray, body: Body, head: Head, limbs: Limbs,
                  cfg: HeuristicParsingConfig, category: str, unit: int, alike: float | None) -> np.ndarray:
    """CIHP label map of the crop from its colour classes ``cls`` (modified: hair cut off the head becomes
    upper garment); ``limbs.cand`` is modified too (covered legs). ``alike``: colour similarity of the upper
    and lower garment seeds (None: no lower garment), for the one-piece decision (`one_piece`)."""
    h, w = mask.shape
    out = np.zeros((h, w), np.uint8)
    out[mask & (cls == C_UPPER)] = UPPER
    out[mask & (cls == C_LOWER)] = PANTS
    hair = mask & (cls == C_HAIR)
    if hair.any():
        n, cc = cv2.connectedComponents(hair.astype(np.uint8), connectivity=8)
        ok = np.zeros(n, bool)
        anchor = head.head_zone & ~head.face_out.astype(bool) if head.chin is not None else head.head_zone
        ok[np.unique(cc[hair & anchor])] = True
        ok[0] = False
        hair = ok[cc]
        cls[mask & (cls == C_HAIR) & ~hair] = C_UPPER
    out[hair] = HAIR

    # skin -> face / neck / arms / legs
    skin = mask & (cls == C_SKIN)
    # legs show only below the skirt / shorts / dress: no leg where the garment continues further down
    lower = mask & (cls == C_LOWER)
    below = np.cumsum(lower[::-1], 0, dtype=np.int32)[::-1]  # counts <= h: int32 is exact
    covered = below > max(2, int(HEM_MARGIN * unit))
    hem = hem_row(lower)
    if hem is not None:  # nor above the garment's hem (a hand beside the trousers is no leg)
        covered[:max(0, hem - int(HEM_MARGIN * unit))] = True
    cand = limbs.cand
    cand[2][covered] += cfg.covered_leg_penalty
    cand[3][covered] += cfg.covered_leg_penalty
    part = argbest(cand, largest=False)
    part_labels = np.array([L_ARM, R_ARM, L_LEG, R_LEG, NECK], np.uint8)
    out[skin] = part_labels[part[skin]]
    if head.chin is not None:
        # skin-coloured pixels above the mouth outside face and ears are the hair's rim against a light backdrop
        out[skin & head.above_mouth & ~head.ear_zone] = HAIR
        face_in_b, face_out_b = head.face_in.astype(bool) & mask, head.face_out.astype(bool) & mask
        out[skin & head.ear_zone] = FACE
        out[face_out_b & (out != HAIR)] = FACE
        out[face_in_b] = FACE
    shoe = mask & (cls == C_SHOE)
    if shoe.any():
        out[shoe] = np.where(limbs.d_leg_l[shoe] < limbs.d_leg_r[shoe], L_SHOE, R_SHOE)

    pants_or_skirt(out, body, body.sw, unit)
    one_piece(out, body, body.sw, category, alike)
    legs_below_hem(out, skin_part=part, limbs=limbs, cfg=cfg, sw=body.sw)
    remove_small(out, mask, cfg.min_part_frac)
    return out


def legs_below_hem(out: np.ndarray, skin_part: np.ndarray, limbs: Limbs, cfg: HeuristicParsingConfig,
                   sw: float) -> None:
    """A skirt or dress ends at its hem: its pixels lower than ``LEG_HEM_MARGIN`` sw below the hem (median
    lowest row of its central columns) and within a leg's reach of a leg chain are the leg they cover (a bare
    thigh in the dress's colour or shade)."""
    for label in (SKIRT, DRESS):
        g = out == label
        hem = hem_row(g)
        if hem is None:
            continue
        low = g.copy()
        low[:hem + max(1, int(LEG_HEM_MARGIN * sw))] = False
        near = np.minimum(limbs.d_leg_l, limbs.d_leg_r) < LEG_REACH * cfg.leg_radius_ratio * cfg.arm_radius * sw
        low &= near
        if low.any():
            out[low] = np.array([L_ARM, R_ARM, L_LEG, R_LEG, NECK], np.uint8)[skin_part[low]]


def one_piece(out: np.ndarray, body: Body, sw: float, category: str, alike: float | None) -> None:
    """Relabel top and bottom as one dress when the evidence says the person wears one garment: its upper and
    lower seeds share one colour (``alike`` at least ``DRESS_ALIKE[category]``: the pair's category is a prior,
    lower for ``dresses``) and the lower part does not end at a crotch (`crotch_notch`: trousers do). With
    ``dresses`` and no lower garment at all (a top cut by the frame), the top is the dress."""
    low = (out == PANTS) | (out == SKIRT)
    if not low.any():
        if category == "dresses":
            out[out == UPPER] = DRESS
        return
    if alike is None or alike < DRESS_ALIKE[category] or (crotch_notch(low, body, sw) or 0.0) >= NOTCH:
        return
    # two legs of garment at its bottom between the hips (shorts on apart legs) are separates whatever the colour
    hem = hem_row(low)
    if hem is not None and split_between_legs(low, body, sw, hem, int(np.nonzero(low.any(1))[0][0])):
        return
    out[low | (out == UPPER)] = DRESS


def hem_row(garment: np.ndarray) -> int | None:
    """Median lowest row of ``garment`` over its central columns (None if empty)."""
    cols = np.nonzero(garment.any(0))[0]
    if cols.size == 0:
        return None
    c0, c1 = int(quantile(cols, 0.2)), int(quantile(cols, 0.8))  # np.percentile(cols, [20, 80])
    sub = garment[:, c0:c1 + 1]
    has = sub.any(0)
    if not has.any():
        return None
    bottom = sub.shape[0] - 1 - np.argmax(sub[::-1], 0)
    return int(median0(bottom[has]))


def pants_or_skirt(out: np.ndarray, body: Body, sw: float, unit: int) -> None:
    """Relabel the lower garment (pants so far) as a skirt when it is short and not split between the legs.

    Short: leg skin shows below its hem. Split: `split_between_legs` (shorts on apart legs), or a
    `crotch_notch` of ``SHORTS_NOTCH`` sw (shorts or cropped trousers on legs held together). Otherwise
    (reaching the image border or the ankles) it stays pants.
    """
    low = out == PANTS
    n = int(low.sum())
    if n == 0:
        return
    hem = hem_row(low)
    if hem is None:
        return
    legs = np.isin(out[hem + 1:], (L_LEG, R_LEG))
    if legs.sum() < SKIRT_LEG_SHARE * n or legs.any(1).sum() < SKIRT_LEG_ROWS * unit:
        return  # no leg skin below the hem: long garment
    top = int(np.nonzero(low.any(1))[0][0])
    if split_between_legs(low, body, sw, hem, top) is False and (crotch_notch(low, body, sw) or 0.0) < SHORTS_NOTCH:
        out[low] = SKIRT


def split_between_legs(low: np.ndarray, body: Body, sw: float, hem: int, top: int) -> bool | None:
    """Whether the lower garment ``low`` forms two runs (shorts) rather than one (a skirt) between the hips
    widened by ``HIP_MARGIN`` sw, in at least half of the rows of its lowest ``SKIRT_BAND`` (None: no rows)."""
    w = low.shape[1]
    hips = [p for p in (body.j[9], body.j[12]) if p is not None]
    if len(hips) == 2:
        xa = int(max(0, min(hips[0][0], hips[1][0]) - HIP_MARGIN * sw))
        xb = int(min(w, max(hips[0][0], hips[1][0]) + HIP_MARGIN * sw))
    else:
        cols = np.nonzero(low.any(0))[0]
        xa, xb = int(np.percentile(cols, 20)), int(np.percentile(cols, 80)) + 1
    band = low[max(top, hem - max(2, int(SKIRT_BAND * (hem - top)))):hem + 1, xa:xb]
    band = band[band.any(1)]
    if band.size == 0:
        return None
    starts = (np.diff(band.astype(np.int8), axis=1) == 1).sum(1) + band[:, 0]
    return bool(np.mean(starts >= 2) >= 0.5)


def crotch_notch(low: np.ndarray, body: Body, sw: float) -> float | None:
    """How far (shoulder widths) the lower garment's main piece ends higher between the legs than beside them:
    the median lowest row on either side (``NOTCH_SIDE`` sw from the legs' midline, the smaller of the two)
    minus the highest lowest row in the middle (within ``NOTCH_MID`` sw). Trousers end at the crotch, far
    above their hems; a skirt's or dress's hem runs across, dipping a little where the legs push it.
    None when the garment or the legs' midline is unknown."""
    pts = [p for p in (body.j[10], body.j[13]) if p is not None]
    if len(pts) < 2:
        pts = [p for p in (body.j[9], body.j[12]) if p is not None]
    if len(pts) < 2 or not low.any():
        return None
    xc = (pts[0][0] + pts[1][0]) / 2
    h, w = low.shape
    n, cc, stats, _ = cv2.connectedComponentsWithStats(low.view(np.uint8), connectivity=8)
    if n > 2:  # the garment's main piece: stray pieces on the shins would fake a hem below the crotch
        low = cc == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    has = low.any(0)
    bottom = np.where(has, h - 1 - np.argmax(low[::-1], 0), -1).astype(np.float64)
    cols = np.arange(w)

    def side(lo: float, hi: float, pick) -> float | None:
        sel = has & (cols >= xc + lo * sw) & (cols <= xc + hi * sw)
        return float(pick(bottom[sel])) if sel.any() else None

    left, right = side(-NOTCH_SIDE[1], -NOTCH_SIDE[0], np.median), side(NOTCH_SIDE[0], NOTCH_SIDE[1], np.median)
    if left is None or right is None:
        return None
    centre = side(-NOTCH_MID, NOTCH_MID, np.min)
    top = float(np.nonzero(low.any(1))[0][0])
    return (min(left, right) - (top if centre is None else centre)) / sw


def remove_small(out: np.ndarray, mask: np.ndarray, frac: float) -> None:
    """Drop pieces of a label smaller than ``frac`` of the person area, then refill them from the neighbours."""
    area = int(mask.sum())
    lim = max(MIN_PART_PX, int(frac * area))
    for lab in np.flatnonzero(np.bincount(out.ravel(), minlength=1)[1:]) + 1:
        m = (out == lab).view(np.uint8)
        # every piece of this label lies inside the label's bounding box: label components there only
        x, y, bw, bh = cv2.boundingRect(m)
        n, cc, stats, _ = cv2.connectedComponentsWithStats(m[y:y + bh, x:x + bw], connectivity=8)
        if n <= 1:
            continue
        drop = np.zeros(n, bool)
        drop[1:] = stats[1:, cv2.CC_STAT_AREA] < lim
        if drop.any():
            box = out[y:y + bh, x:x + bw]
            box[drop[cc]] = 0
    filled = fit_to_mask(out, mask)
    out[...] = filled


def fit_to_mask(lab: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Restrict labels to ``mask`` and give mask pixels without a label the nearest label."""
    lab = np.multiply(lab, mask, dtype=np.uint8)  # a new uint8 map, 0 outside the mask
    holes = mask & (lab == 0)
    k = np.ones((3, 3), np.uint8)
    for _ in range(3):  # thin seams: grow the neighbours' labels (cheap)
        if not holes.any():
            return lab
        grown = cv2.dilate(lab, k)
        np.copyto(lab, grown, where=holes)
        holes = mask & (lab == 0)
    if holes.any() and lab.any():
        _, idx = cv2.distanceTransformWithLabels((lab == 0).astype(np.uint8), cv2.DIST_L2, 3,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
        src = np.zeros(int(idx.max()) + 1, np.uint8)
        nz = lab != 0
        src[idx[nz]] = lab[nz]
        lab[holes] = src[idx[holes]]
    return lab
