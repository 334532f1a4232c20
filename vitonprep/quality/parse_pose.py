"""The CIHP parse judged against the pose: which classes lie along the limbs, at the hands, on the face, and
whether limb and hair labels stay near the joints they belong to."""

from __future__ import annotations

import cv2
import numpy as np

from vitonprep.derive.labels import CIHP_LABELS
from vitonprep.quality.config import QualityConfig
from vitonprep.quality.geometry import Body, chain_points, labels_at
from vitonprep.quality.report import Outcome

__all__ = ["limb_chains", "hand_labels", "limb_far", "face_label", "hair_far", "neck_at_top"]

_ARMS = (("RShoulder", "RElbow", "RWrist"), ("LShoulder", "LElbow", "LWrist"))
_LEGS = (("RHip", "RKnee", "RAnkle"), ("LHip", "LKnee", "LAnkle"))
#: classes that may lie along an arm: glove, upper clothes, dress, coat, neck skin, scarf, arms, hair, background
_ARM_OK = frozenset((0, 2, 3, 5, 6, 7, 10, 11, 14, 15))
#: along a leg: any garment (long tops and coats reach the thighs), socks, pants, skirt, legs, shoes, background
_LEG_OK = frozenset((0, 5, 6, 7, 8, 9, 12, 16, 17, 18, 19))
_ARM_LABELS, _LEG_LABELS = (3, 14, 15), (16, 17)


def _names(labels: np.ndarray, allowed: frozenset[int]) -> str:
    bad = labels[~np.isin(labels, list(allowed))]
    if not len(bad):
        return "nothing"
    ids, counts = np.unique(bad, return_counts=True)
    return ", ".join(CIHP_LABELS[i] if i < len(CIHP_LABELS) else str(i) for i in ids[np.argsort(-counts)][:3])


def limb_chains(body: Body, parse: np.ndarray, cfg: QualityConfig) -> list[Outcome]:
    """``arm_chain`` / ``leg_chain``: share of the parse along each limb's joints in a class allowed there."""
    out = []
    for check, chains, allowed, what in (("arm_chain", _ARMS, _ARM_OK, "arm"), ("leg_chain", _LEGS, _LEG_OK, "leg")):
        worst: tuple[float, str] | None = None
        for joints in chains:
            if not body.has(*joints):
                continue
            # the first fifth of the upper segment sits on the torso (shoulder, hip joint), so it is left out
            labels = labels_at(parse, chain_points([body.xy(j) for j in joints], skip_start=0.2))
            if len(labels) < 10:
                continue
            share = float(np.isin(labels, list(allowed)).mean())
            side = "right" if joints[0][0] == "R" else "left"
            if worst is None or share < worst[0]:
                worst = (share, f"the {side} {what} is parsed mostly as {_names(labels, allowed)} "
                                f"({100 * (1 - share):.0f} % of its joints' line)")
        if worst is not None:
            out.append(Outcome(check, worst[0], worst[1] if worst[0] < cfg.min_chain_agreement else None))
    return out


def hand_labels(body: Body, parse: np.ndarray, cfg: QualityConfig) -> Outcome | None:
    """Share of hand keypoints (fingers) on an arm or glove label; background is not counted."""
    worst: tuple[float, str] | None = None
    for hand in ("hand_right", "hand_left"):
        labels = labels_at(parse, body.part_xy(hand, slice(1, 21)))
        labels = labels[labels != 0]
        if len(labels) < 5:
            continue
        share = float(np.isin(labels, _ARM_LABELS).mean())
        if worst is None or share < worst[0]:
            side = hand.split("_")[1]
            worst = (share, f"the {side} hand is parsed as {_names(labels, frozenset(_ARM_LABELS))}: the arm "
                            "was labelled with it")
    if worst is None:
        return None
    return Outcome("hand_labels", worst[0], worst[1] if worst[0] < cfg.min_hand_agreement else None)


#: limb labels are judged at a quarter of the size: the distance limit is tens of pixels, 4 px cells do not move it
_FAR_SCALE = 4
_ARM_LUT, _LEG_LUT = np.zeros(256, bool), np.zeros(256, bool)
_ARM_LUT[list(_ARM_LABELS)], _LEG_LUT[list(_LEG_LABELS)] = True, True


def _chain_distance(body: Body, chains: tuple[tuple[str, ...], ...], shape: tuple[int, int]) -> np.ndarray | None:
    """Distance (px of the full size) of every cell of a 1/_FAR_SCALE grid to the nearest drawn chain (None when
    a joint of a chain is missing)."""
    canvas = np.full(shape, 255, np.uint8)
    for joints in chains:
        if not body.has(*joints):
            return None
        pts = np.round(np.array([body.xy(j) for j in joints]) / _FAR_SCALE).astype(np.int32)
        cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, 0, 1)
    return cv2.distanceTransform(canvas, cv2.DIST_L2, 3) * _FAR_SCALE


def limb_far(body: Body, parse: np.ndarray, cfg: QualityConfig) -> Outcome | None:
    """Share of arm (or leg) labelled pixels far from every arm (leg) chain; the worse of the two."""
    frame = body.torso()
    if frame is None:
        return None
    limit = cfg.limb_far_distance * frame[2]
    small = parse[::_FAR_SCALE, ::_FAR_SCALE]
    worst: tuple[float, str] | None = None
    for chains, lut, what in ((_ARMS, _ARM_LUT, "arm"), (_LEGS, _LEG_LUT, "leg")):
        sel = lut[small]
        n = np.count_nonzero(sel)
        if n * _FAR_SCALE * _FAR_SCALE < 500:
            continue
        dist = _chain_distance(body, chains, small.shape)
        if dist is None:
            continue
        share = np.count_nonzero(dist[sel] > limit) / n
        if worst is None or share > worst[0]:
            worst = (share, f"{100 * share:.0f} % of the {what} labels lie far from the {what} joints "
                            f"(> {limit:.0f} px): something else was labelled {what}")
    if worst is None:
        return None
    return Outcome("limb_far", worst[0], worst[1] if worst[0] > cfg.max_limb_far else None)


def face_label(body: Body, parse: np.ndarray, cfg: QualityConfig) -> Outcome | None:
    """Share of face/sunglasses labels in the disk of one eye distance around the nose."""
    eyes = [n for n in ("REye", "LEye") if body.in_frame(n)]
    if not body.in_frame("Nose") or not eyes:
        return None
    nose = body.xy("Nose")
    r = max(8.0, max(float(np.hypot(*(body.xy(e) - nose))) for e in eyes) * (1.0 if len(eyes) == 2 else 1.4))
    h, w = parse.shape[:2]
    x0, x1 = max(0, int(nose[0] - r)), min(w, int(nose[0] + r) + 1)
    y0, y1 = max(0, int(nose[1] - r)), min(h, int(nose[1] + r) + 1)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    labels = parse[y0:y1, x0:x1][(xx - nose[0]) ** 2 + (yy - nose[1]) ** 2 <= r * r]
    if not len(labels):
        return None
    share = float(np.isin(labels, (4, 13)).mean())
    if share >= cfg.min_face_label:
        return Outcome("face_label", share)
    return Outcome("face_label", share, f"the face is in frame but parsed as {_names(labels, frozenset((4, 13)))}")


def hair_far(body: Body, parse: np.ndarray, cfg: QualityConfig) -> Outcome | None:
    """Share of hair pixels in connected regions that do not reach the head keypoints.

    At half size, on the box around the hair: a region's reach needs no finer grid, and the rest of the canvas
    holds no hair."""
    head = [body.xy(n) for n in ("Nose", "REye", "LEye", "REar", "LEar") if body.has(n)]
    if len(head) < 2:
        return None
    half = parse[::2, ::2] == 2
    rows, cols = np.flatnonzero(half.any(1)), np.flatnonzero(half.any(0))
    if len(rows) == 0:
        return None
    y0, x0 = int(rows[0]), int(cols[0])
    hair = half[y0:int(rows[-1]) + 1, x0:int(cols[-1]) + 1].view(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(hair, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    total = int(areas.sum())
    if total < 50:  # 200 px at full size
        return None
    pts = np.array(head)
    size = max(float(np.ptp(pts[:, 0])), float(np.ptp(pts[:, 1])), 10.0)
    reach = np.zeros_like(hair)
    for p in pts:
        cv2.circle(reach, (int(round(p[0] / 2)) - x0, int(round(p[1] / 2)) - y0), int(round(0.75 * size)), 1, -1)
    touching = np.zeros(n, bool)
    touching[comp[reach > 0]] = True
    far = int(areas[~touching[1:]].sum())
    share = far / total
    if share <= cfg.max_hair_far:
        return Outcome("hair_far", share)
    return Outcome("hair_far", share, f"{100 * share:.0f} % of the hair labels do not touch the head")


def neck_at_top(parse: np.ndarray, cfg: QualityConfig) -> Outcome | None:
    """``neck_at_top``: share of the person pixels on the frame's top rows (2 % of the height) labelled neck skin.

    The neck sits under the chin, so neck skin on the top edge is a head cut by the frame whose chin and lips were
    parsed as neck (the agnostic then greys them). The evidence is the frame's edge, not the parser.
    """
    band = parse[: max(4, parse.shape[0] // 50)]
    person = np.count_nonzero(band)
    if person < 200:
        return None
    share = np.count_nonzero(band == 10) / person
    if share <= cfg.max_neck_at_top:
        return Outcome("neck_at_top", share)
    return Outcome("neck_at_top", share, f"{100 * share:.0f} % of the person on the frame's top edge is parsed as "
                                         "neck: a head cut by the frame, its face labelled torso skin")
