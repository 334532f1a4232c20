"""Per-pixel class scores of the heuristic parser: the skin model, colour models from geometric seeds and the
spatial priors, then the class map (argmax of the blurred scores, waist re-cut as one line)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from vitonprep.backends.parsing_heuristic.body import Body, chain_map, limb_lines
from vitonprep.backends.parsing_heuristic.colour import (
    AB_STEP,
    LB,
    MIN_SAMPLES,
    NBINS,
    SKIN_AB_ICOV,
    SKIN_AB_MEAN,
    argbest,
    gauss_fit,
    hist_model,
    mahal,
    similarity,
)
from vitonprep.backends.parsing_heuristic.config import (
    C_HAIR,
    C_LOWER,
    C_SHOE,
    C_SKIN,
    C_UPPER,
    NCLS,
    NEG,
    HeuristicParsingConfig,
)
from vitonprep.backends.parsing_heuristic.regions import Frame, Head, Limbs

logger = logging.getLogger(__name__)

NOFACE_LIMB_SKIN = 0.04  # without a face, skin is sampled within this many shoulder widths of forearms / shins
GENERIC_SKIN_MD = 4.0  # ... where the colour is this close to the generic skin Gaussian
SKIN_FLOOR = 0.01  # the skin score never drops below this share of a uniform colour density
HAIR_NOT_SKIN_MD = 2.0  # hair seed pixels must be at least this far from the skin colour
# seeds, in torso coordinates (t along neck -> hips, s lateral in shoulder widths) or shoulder widths (sw)
UPPER_SEED_T, UPPER_SEED_S = (0.15, 0.7), 0.4  # middle of the torso
LOWER_SEED_T, LOWER_SEED_S = (1.15, 1.6), 0.35  # below the hips ...
THIGH_SEED_SW, THIGH_SEED_T = 0.08, 1.1  # ... and along the thighs
ARM_CLEARANCE = 0.25  # lower-garment seeds keep this many sw away from the arms (hands rest on the hips)
MIN_LOWER_SEED = 0.02  # a lower-garment seed smaller than this share of the upper one is no garment
SHOE_SEED = 0.03  # shoes: within this many sw of the foot segments
SHOE_ZONE = 0.15  # no shoe farther than this many sw from the feet
KEEP_SKIN_SEED = 0.3  # a seed keeps its skin-coloured pixels when fewer than this share are not skin
# hair cap above the forehead: between these distances (face widths) from the face, above 0.3 face heights
HAIR_CAP = (0.05, 0.4, 0.3)
HAIR_SIDE_ABOVE_CHIN = 0.5  # without a cap: hair seeds beside the face this many face heights above the chin
# histogram smoothing (a / b bins) and uniform share per colour model: hair and shoes vary more in shade
HAIR_HIST, GARMENT_HIST, SHOE_HIST = (1.5, 0.05), (1.0, 0.15), (1.5, 0.1)
# torso window inside which the waist is re-cut as one line
WAIST_T, WAIST_S = (0.3, 2.0), 0.45
WAIST_S_WIDE, WAIST_ARM_CLEAR = 0.8, 1.5  # ... up to this many sw where farther than this many arm radii from an arm
HAIR_BELOW_CHIN = 1.0  # hair below the chin must be clearly hair coloured: log-score handicap
SKIN_TORSO_T, SKIN_TORSO_S = (0.3, 1.1), 0.35  # middle of the torso: skin shows only through a neckline
NEAR_PART = 1.5  # skin is not penalised within this many normalised units of a skin-showing part
FACE_NEAR = 0.2  # the face counts as a skin-showing part; its distance unit is this many face widths
LOWER_GAP = 0.1  # the lower-garment prior starts this far (torso lengths) above the waist line
SLEEVE_R, SLEEVE_PENALTY = 0.7, 4.0  # lower garment within this many arm radii of a sleeved arm: log handicap
CUFF_REACH = 0.15  # a sleeve's cuff covers the wrist: the sleeve rule reaches this many sw past the wrist
SHOE_GARMENT_PENALTY = 3.0  # garments below the ankles near the feet: log handicap (a tie goes to the shoe)
# the ankle keypoint sits inside a trouser hem that covers the shoe's top: shoe seeds start this many sw below
# the foot's own ankle, so the hem's colour does not enter the shoe model
SHOE_SEED_BELOW_ANKLE = 0.06
SLIVER = 0.05  # garment strips thinner than twice this many sw ...
SLIVER_REACH = 2.0  # ... within this many limb radii of an arm or leg chain are skin
WAIST_PRIOR_KEEP = 0.3  # share of the waist prior kept when the waist is cut as one line ...
EDGE_BONUS = 0.3  # ... plus this many torso lengths of rows for a full-strength horizontal edge
EDGE_RUN = 0.1  # horizontal edges are averaged along this many sw
HAND_DILATE = 0.03  # hand hulls are dilated by this many sw


@dataclass
class Skin:
    """Skin colour model: squared Mahalanobis distance ``md`` of every pixel's (a, b) to the skin Gaussian,
    ``skin_like`` (skin coloured, inside the mask) and the per-pixel log score."""

    md: np.ndarray
    skin_like: np.ndarray
    score: np.ndarray


def skin_model(labc: np.ndarray, mask: np.ndarray, fr: Frame, body: Body, head: Head,
               cfg: HeuristicParsingConfig) -> Skin:
    skin_px = None
    if head.face_core.any() and (head.face_core.astype(bool) & mask).sum() > MIN_SAMPLES:
        skin_px = labc[head.face_core.astype(bool) & mask]
    else:
        # no face: hands, forearms and shins that look like skin in general
        shape = (fr.h, fr.w)
        hm = np.zeros(shape, np.uint8)
        for hand in body.hands.values():
            cv2.fillPoly(hm, [cv2.convexHull(np.round(hand).astype(np.int32))], 1)
        hm = cv2.erode(hm, np.ones((3, 3), np.uint8)).astype(bool)
        limbs = limb_lines(body, (6, 7)) + limb_lines(body, (3, 4)) + limb_lines(body, (13, 14)) \
            + limb_lines(body, (10, 11))
        hm |= chain_map(shape, limbs) < NOFACE_LIMB_SKIN * fr.sw
        ab0 = labc[..., 1:3].astype(np.float64)
        hm &= mask & (mahal(ab0, SKIN_AB_MEAN, SKIN_AB_ICOV) < GENERIC_SKIN_MD)
        if hm.sum() > MIN_SAMPLES:
            skin_px = labc[hm]
    if skin_px is not None:
        mu, icov = gauss_fit(skin_px[:, 1:3].astype(np.float64))
    else:
        mu, icov = SKIN_AB_MEAN, SKIN_AB_ICOV
    ab = labc[..., 1:3].astype(np.float32)
    md = mahal(ab, mu.astype(np.float32), icov.astype(np.float32))
    skin_like = mask & (md < cfg.skin_seed_md)
    # skin: Gaussian in (a, b) per pixel times the seeds' lightness histogram (wide: shading differs)
    lbin = labc[..., 0] >> 5
    if skin_px is not None:
        keep = mahal(skin_px[:, 1:3].astype(np.float64), mu, icov) < cfg.skin_seed_md
        pl = np.bincount(skin_px[keep, 0] >> 5, minlength=LB).astype(np.float64) + 0.0
    else:
        pl = np.ones(LB)
    pl = np.convolve(np.convolve(pl / max(pl.sum(), 1.0), [0.25, 0.5, 0.25], "same"), [0.25, 0.5, 0.25], "same")
    pl = np.log(pl / pl.sum() * 0.95 + 0.05 / LB)
    logdet = float(np.log(np.linalg.det(np.linalg.inv(icov))))
    score = (-0.5 * md - 0.5 * logdet - np.log(2 * np.pi) + np.log(AB_STEP ** 2)).astype(np.float32) \
        + pl.astype(np.float32)[lbin]  # cast the 8 bins, not the map
    score = np.logaddexp(score, np.float32(np.log(SKIN_FLOOR / NBINS)))
    return Skin(md, skin_like, score)


def drop_skin(seed: np.ndarray, skin_like: np.ndarray) -> np.ndarray:
    """Seed pixels that are not skin coloured, unless most of them are (a skin-coloured garment)."""
    n = int(seed.sum())
    rest = seed & ~skin_like
    return rest if rest.sum() >= KEEP_SKIN_SEED * n else seed


def below_ankle(fr: Frame, body: Body, limbs: Limbs, margin: float) -> np.ndarray | None:
    """Pixels more than ``margin`` sw below the ankle of their nearer leg (one foot may be raised); None
    without both ankles."""
    la, ra = body.j[14], body.j[11]
    if la is None or ra is None:
        return None
    ankle_y = np.where(limbs.d_leg_l < limbs.d_leg_r, np.float32(la[1]), np.float32(ra[1]))
    return fr.ys > ankle_y + margin * fr.sw


def colour_models(bins: np.ndarray, mask: np.ndarray, fr: Frame, body: Body, head: Head, limbs: Limbs,
                  skin: Skin) -> tuple[list[np.ndarray | None], float | None]:
    """Log histograms per colour class (None: no model), fitted on geometric seeds, and the colour similarity
    of the upper and lower garment seeds (None without a lower garment): a one-piece garment has one colour
    above and below the waist, separates usually do not."""
    xs, ys, t, s, sw = fr.xs, fr.ys, fr.t, fr.s, fr.sw
    models: list[np.ndarray | None] = [None] * NCLS
    hair_seed = np.zeros((fr.h, fr.w), bool)
    if head.chin is not None:
        near, far, above = HAIR_CAP
        up, centre = head.up, head.centre
        cap = (head.d_face > near * head.fw) & (head.d_face < far * head.fw) \
            & (((xs - centre[0]) * up[0] + (ys - centre[1]) * up[1]) > above * head.fh)
        hair_seed = cap & mask & ~(skin.md < HAIR_NOT_SKIN_MD)
        if hair_seed.sum() < MIN_SAMPLES:
            # the cap is out of the frame (a head cut at the top): hair shows beside the face, above the chin
            side = (head.d_face > near * head.fw) & (head.d_face < far * head.fw) & head.head_zone \
                & (((xs - head.chin[0]) * up[0] + (ys - head.chin[1]) * up[1]) > HAIR_SIDE_ABOVE_CHIN * head.fh)
            hair_seed = side & mask & ~(skin.md < HAIR_NOT_SKIN_MD)
    models[C_HAIR] = hist_model(bins[hair_seed], *HAIR_HIST)

    upper_seed = mask & (t > UPPER_SEED_T[0]) & (t < UPPER_SEED_T[1]) & (s < UPPER_SEED_S)
    upper_seed = drop_skin(upper_seed, skin.skin_like)
    lower_seed = mask & (((t > LOWER_SEED_T[0]) & (t < LOWER_SEED_T[1]) & (s < LOWER_SEED_S))
                         | (((limbs.d_leg_l < THIGH_SEED_SW * sw) | (limbs.d_leg_r < THIGH_SEED_SW * sw))
                            & (t > THIGH_SEED_T)))
    lower_seed &= (limbs.d_arm_l > ARM_CLEARANCE * sw) & (limbs.d_arm_r > ARM_CLEARANCE * sw)
    lower_seed = drop_skin(lower_seed, skin.skin_like)
    models[C_UPPER] = hist_model(bins[upper_seed], *GARMENT_HIST)
    alike = None
    if lower_seed.sum() > MIN_LOWER_SEED * upper_seed.sum():
        models[C_LOWER] = hist_model(bins[lower_seed], *GARMENT_HIST)
        alike = similarity(bins[upper_seed], bins[lower_seed])
        logger.debug("upper / lower garment seeds: colour similarity %.3f", alike)
    shoe_seed = mask & (limbs.d_feet < SHOE_SEED * sw)
    low = below_ankle(fr, body, limbs, SHOE_SEED_BELOW_ANKLE)
    if low is not None and (shoe_seed & low).sum() >= MIN_SAMPLES:
        shoe_seed &= low
    shoe_seed = drop_skin(shoe_seed, skin.skin_like)
    models[C_SHOE] = hist_model(bins[shoe_seed], *SHOE_HIST)
    return models, alike


def class_map(bins: np.ndarray, mask: np.ndarray, fr: Frame, body: Body, head: Head, limbs: Limbs, skin: Skin,
              models: list[np.ndarray | None], cfg: HeuristicParsingConfig, unit: int,
              edges: np.ndarray) -> np.ndarray:
    """Colour class of every pixel (uint8, ``C_*``): colour models plus spatial priors, box-blurred, argmax."""
    t, s, sw = fr.t, fr.s, fr.sw
    scores = np.full((NCLS, fr.h, fr.w), NEG, np.float32)
    for c in range(NCLS):
        if models[c] is not None:
            scores[c] = models[c][bins]
    scores[C_SKIN] = skin.score
    k = cfg.prior_slope
    scores[C_HAIR][~head.hair_zone] = NEG
    scores[C_HAIR][head.hair_zone & ~head.head_zone] -= HAIR_BELOW_CHIN
    if head.chin is not None:
        # no garment around the face, nor anywhere above the mouth: big hair reaches beyond the head zone
        for c in (C_UPPER, C_LOWER, C_SHOE):
            scores[c][head.head_zone | head.above_mouth] = NEG
    scores[C_UPPER] -= k * np.clip(t - cfg.waist, 0, None)
    scores[C_LOWER] -= k * np.clip(cfg.waist - LOWER_GAP - t, 0, None)
    scores[C_SKIN] -= cfg.skin_torso_penalty * ((t > SKIN_TORSO_T[0]) & (t < SKIN_TORSO_T[1]) & (s < SKIN_TORSO_S))
    near = limbs.cand.min(0)
    if head.chin is not None:
        near = np.minimum(near, head.d_face / (FACE_NEAR * head.fw))
    scores[C_SKIN] -= cfg.skin_far_penalty * np.clip(near - NEAR_PART, 0, 3)
    scores[C_SHOE][limbs.d_feet > SHOE_ZONE * sw] = NEG
    # a sleeved arm's chain runs through its sleeve down to the wrist, never through trousers or a skirt: a
    # dark sleeve end beside the hip is not the lower garment even when its colour matches it; its cuff reaches
    # past the wrist keypoint (CUFF_REACH along the forearm)
    for d_chain, ids in ((limbs.d_chain_l, (5, 6, 7)), (limbs.d_chain_r, (2, 3, 4))):
        if sleeved(scores, body, ids[:2]):
            cuff = cuff_line(body, ids[1], ids[2], CUFF_REACH * sw)
            d = d_chain if cuff is None else np.minimum(d_chain, chain_map((fr.h, fr.w), [cuff]))
            scores[C_LOWER][d < SLEEVE_R * cfg.arm_radius * sw] -= SLEEVE_PENALTY
    # below the ankles, next to the feet, a pixel of a garment's colour is a shoe of the same colour
    # (each foot below its own ankle: the higher ankle's line ran through the other leg's hem)
    ankles = [body.j[i][1] for i in (11, 14) if body.j[i] is not None]
    if ankles and models[C_SHOE] is not None:
        low = below_ankle(fr, body, limbs, 0.0)
        foot = (limbs.d_feet < SHOE_ZONE * sw) & (fr.ys > min(ankles) if low is None else low)
        scores[C_UPPER][foot] -= SHOE_GARMENT_PENALTY
        scores[C_LOWER][foot] -= SHOE_GARMENT_PENALTY
    if body.hands:  # hands are skin (no gloves in try-on photos)
        hm = np.zeros((fr.h, fr.w), np.uint8)
        for hand in body.hands.values():
            cv2.fillConvexPoly(hm, cv2.convexHull(np.round(hand).astype(np.int32)), 1)
        hm = cv2.dilate(hm, np.ones((3, 3), np.uint8), iterations=max(1, int(HAND_DILATE * sw)))
        scores[C_SKIN][hm.astype(bool)] += cfg.hand_bonus
    r = max(1, int(round(cfg.score_blur * unit)))
    for c in range(NCLS):
        scores[c] = cv2.blur(scores[c], (2 * r + 1, 2 * r + 1))
    cls = argbest(scores)
    if models[C_LOWER] is not None:
        # the torso across its whole width, less the arms (a sleeve hanging past the waist stays a sleeve)
        off_arms = np.minimum(limbs.d_chain_l, limbs.d_chain_r) > WAIST_ARM_CLEAR * cfg.arm_radius * sw
        region = mask & (t > WAIST_T[0]) & (t < WAIST_T[1]) & ((s < WAIST_S) | ((s < WAIST_S_WIDE) & off_arms))
        split_waist(cls, scores, region, fr, edges, cfg)
    drop_slivers(cls, mask, limbs, cfg, sw)
    return cls


def cuff_line(body: Body, elbow: int, wrist: int, reach: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The forearm's line from the wrist ``reach`` px on (None without elbow and wrist)."""
    e, w = body.j[elbow], body.j[wrist]
    if e is None or w is None:
        return None
    n = float(np.hypot(*(w - e)))
    return None if n < 1.0 else (w, w + (w - e) * (reach / n))


def sleeved(scores: np.ndarray, body: Body, ids: tuple[int, int]) -> bool:
    """True when the upper arm (shoulder ``ids[0]`` -> elbow ``ids[1]``) is covered: along its middle, the
    upper garment outscores skin at most sampled points."""
    a, b = body.j[ids[0]], body.j[ids[1]]
    if a is None or b is None:
        return False
    h, w = scores.shape[1:]
    pts = a[None, :] + np.linspace(0.2, 0.9, 8)[:, None] * (b - a)[None, :]
    xi, yi = np.rint(pts[:, 0]).astype(np.int64), np.rint(pts[:, 1]).astype(np.int64)
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    if ok.sum() < 4:
        return False
    return bool(np.mean(scores[C_UPPER, yi[ok], xi[ok]] > scores[C_SKIN, yi[ok], xi[ok]]) > 0.5)


def drop_slivers(cls: np.ndarray, mask: np.ndarray, limbs: Limbs, cfg: HeuristicParsingConfig, sw: float) -> None:
    """Garment strips thinner than ``2 SLIVER`` shoulder widths along a limb are skin: the shaded outline of a
    bare leg or arm takes the colour of a light garment (and of the backdrop it blends into), but no garment
    is that thin along a limb (a trouser leg or sleeve is a limb's width)."""
    garment = (((cls == C_UPPER) | (cls == C_LOWER)) & mask).view(np.uint8)
    r = max(1, int(round(SLIVER * sw)))
    core = cv2.morphologyEx(garment, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    thin = (garment > core)
    if not thin.any():
        return
    ra = cfg.arm_radius * sw
    near = (np.minimum(limbs.d_leg_l, limbs.d_leg_r) < SLIVER_REACH * cfg.leg_radius_ratio * ra) \
        | (np.minimum(limbs.d_chain_l, limbs.d_chain_r) < SLIVER_REACH * ra)
    cls[thin & near] = C_SKIN


def horizontal_edges(labc: np.ndarray, sw: float) -> np.ndarray:
    """Strength (0..1) of horizontal edges: the vertical lightness gradient (Sobel), averaged along rows over a
    tenth of a shoulder width (a hem or waistband runs across the body; a print's or a fold's edges are shorter),
    divided by its 99th percentile (over every other row and column). Lightness only: an edge between two
    colours is already in the colour models' scores; the edges matter where top and bottom share a colour."""
    gy = np.abs(cv2.Sobel(labc[..., 0], cv2.CV_32F, 0, 1, ksize=3))
    r = max(1, int(EDGE_RUN * sw))
    gy = cv2.blur(gy, (2 * r + 1, 1))
    sample = gy[::2, ::2].ravel()
    k = int(0.99 * (sample.size - 1))
    top = float(np.partition(sample, k)[k])
    return np.minimum(gy / max(top, 1e-3), 1.0)


def split_waist(cls: np.ndarray, scores: np.ndarray, region: np.ndarray, fr: Frame, edges: np.ndarray,
                cfg: HeuristicParsingConfig) -> None:
    """Make the upper/lower garment boundary inside ``region`` (the torso) one smooth line, a row per column.

    In each column, the boundary row maximises (upper - lower score) above it plus (lower - upper) below it
    (a prefix-sum argmax) plus a bonus for a horizontal edge on that row (``EDGE_BONUS`` torso lengths of
    rows at full strength); the waist prior keeps only ``WAIST_PRIOR_KEEP`` of its weight here, so that a top
    and bottom of the same colour are cut at their hem rather than at the prior's waist. The rows are then
    median-filtered across columns (a window of a quarter shoulder width). Outside ``region`` (sleeves, hems
    that are not horizontal) the per-pixel decision stays.
    """
    both = (cls == C_UPPER) | (cls == C_LOWER)
    garment = region & both
    cols = np.nonzero(garment.any(0))[0]
    if cols.size < 3:
        return
    sw = fr.sw
    x0, x1 = cols[0], cols[-1] + 1
    g = garment[:, x0:x1]
    k, t = cfg.prior_slope, fr.t[:, x0:x1]
    prior = k * np.clip(cfg.waist - LOWER_GAP - t, 0, None) - k * np.clip(t - cfg.waist, 0, None)
    d = np.where(g, scores[C_UPPER, :, x0:x1] - scores[C_LOWER, :, x0:x1] - (1 - WAIST_PRIOR_KEEP) * prior, 0.0)
    c = np.cumsum(d, 0)
    c = np.vstack([np.zeros((1, c.shape[1]), c.dtype), c])
    c[:-1] += np.where(g, EDGE_BONUS * fr.torso * edges[:, x0:x1], 0.0)
    b = np.argmax(c, 0).astype(np.float32)  # first row of the lower garment
    b[~g.any(0)] = np.nan
    win = max(3, int(0.25 * sw) | 1)
    view = np.lib.stride_tricks.sliding_window_view(np.pad(b, win // 2, mode="edge"), win)
    valid = np.isfinite(view)
    # median of the valid rows of each window (NaN sorts last)
    srt = np.sort(view, 1)
    cnt = valid.sum(1)
    ok = cnt > 0
    sm = np.full(b.shape, np.nan, np.float32)
    sm[ok] = srt[np.nonzero(ok)[0], (cnt[ok] - 1) // 2]
    sm = np.where(np.isfinite(sm), sm, np.float32(cls.shape[0]))
    rows = np.arange(cls.shape[0], dtype=np.float32)[:, None]
    sub = cls[:, x0:x1]
    sub[g & (rows < sm[None, :])] = C_UPPER
    sub[g & (rows >= sm[None, :])] = C_LOWER
