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


def assign_labels(cls: np.ndarray, mask: np.ndarray, body: Body, head: Head, limbs: Limbs,
                  cfg: HeuristicParsingConfig, category: str, unit: int) -> np.ndarray:
    """CIHP label map of the crop from its colour classes ``cls`` (modified: hair cut off the head becomes
    upper garment); ``limbs.cand`` is modified too (covered legs)."""
    h, w = mask.shape
    out = np.zeros((h, w), np.uint8)
    upper_label = DRESS if category == "dresses" else UPPER
    out[mask & (cls == C_UPPER)] = upper_label
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
    lower_cls = C_UPPER if category == "dresses" else C_LOWER
    lower = mask & (cls == lower_cls)
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
        face_in_b, face_out_b = head.face_in.astype(bool) & mask, head.face_out.astype(bool) & mask
        out[skin & head.ear_zone] = FACE
        out[face_out_b & (out != HAIR)] = FACE
        out[face_in_b] = FACE
    shoe = mask & (cls == C_SHOE)
    if shoe.any():
        out[shoe] = np.where(limbs.d_leg_l[shoe] < limbs.d_leg_r[shoe], L_SHOE, R_SHOE)

    pants_or_skirt(out, body, body.sw, unit)
    remove_small(out, mask, cfg.min_part_frac)
    return out


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

    Short: leg skin shows below its hem. Split: near the hem, the garment between the hips forms two runs
    (shorts) rather than one (skirt) in at least half of the rows. Otherwise (reaching the image border or the
    ankles) it stays pants.
    """
    low = out == PANTS
    n = int(low.sum())
    if n == 0:
        return
    w = out.shape[1]
    hem = hem_row(low)
    if hem is None:
        return
    top = int(np.nonzero(low.any(1))[0][0])
    legs = np.isin(out[hem + 1:], (L_LEG, R_LEG))
    if legs.sum() < SKIRT_LEG_SHARE * n or legs.any(1).sum() < SKIRT_LEG_ROWS * unit:
        return  # no leg skin below the hem: long garment
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
        return
    starts = (np.diff(band.astype(np.int8), axis=1) == 1).sum(1) + band[:, 0]
    if np.mean(starts >= 2) < 0.5:
        out[low] = SKIRT


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
