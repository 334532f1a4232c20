"""Spatial regions of the heuristic parser at the working resolution: torso coordinates, head geometry and the
distances to the skin-showing parts (arms, legs, neck)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vitonprep.backends.parsing_heuristic.body import Body, chain_map, hand_segments, limb_lines
from vitonprep.backends.parsing_heuristic.config import HeuristicParsingConfig

# Head geometry, in face widths (fw, jaw end to jaw end) or face heights (fh, chin to nose bridge).
BROW_INSET = 0.1  # face_in stops this many fh below the brows (the forehead band is decided by colour)
CORE_ERODE = 0.04  # the skin-colour seed is the face eroded by this many fw ...
FEATURE_DILATE = 0.05  # ... minus eyes, brows, nostrils and mouth dilated by this many fw
CHIN_MARGIN = 0.05  # "above the chin" starts this many fh below the chin point
HEAD_ZONE = 0.6  # the head zone reaches this many fw around the face polygon
EAR_ZONE = 0.25  # ears lie within this many fw beside the face polygon
ABOVE_MOUTH = 0.5  # face heights above the chin: the mouth's level (no garment, no neck skin above it)
HAIR_BAND = 1.2  # long hair: within this many fw of the face centre ...
HAIR_BAND_T = 0.5  # ... down to this far along the torso (chest)
# without a face: a head disc around nose / eyes / ears and a band below it, in shoulder widths (sw)
HEAD_DISC = 0.45
HAIR_BAND_SW = 0.6
HAIR_BAND_T_NOFACE = 0.45
# face points outlined for the skin seed's holes: eyes, mouth, brows, nostrils
FACE_FEATURES = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), tuple(range(48, 60)),
                 (17, 18, 19, 20, 21), (22, 23, 24, 25, 26), (31, 32, 33, 34, 35))

CROTCH_T = 1.2  # along the torso axis (1 = hips): no leg skin above this
NECK_RADIUS = 2.5  # the neck / chest skin "limb" is this many arm radii thick
ARM_REACH = 1.6  # arm skin lies within this many arm radii of its chain (joints may sit off-centre) ...
FAR_PART = 10.0  # ... beyond it the arm's normalised distance gets this handicap
NECKLINE_T = 0.35  # skin of the chest is expected above this torso position (a neckline), not below


@dataclass
class Frame:
    """Pixel grids of the crop and torso coordinates: ``t`` along neck -> mid-hip (0 at the neck, 1 at the
    hips), ``s`` = |lateral offset| in shoulder widths; ``sw`` shoulder width, ``torso`` torso length (px)."""

    h: int
    w: int
    xs: np.ndarray
    ys: np.ndarray
    t: np.ndarray
    s: np.ndarray
    sw: float
    torso: float


def torso_frame(mask: np.ndarray, body: Body) -> Frame:
    h, w = mask.shape
    # pixel coordinates as a column and a row: expressions in both broadcast to the full map, value for value
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    sw, T = body.sw, body.torso_len
    # only the size of the lateral offset matters: taken once here
    u = (body.mid - body.neck) / T
    v = np.array([-u[1], u[0]])
    dx, dy = xs - body.neck[0], ys - body.neck[1]
    t = (dx * u[0] + dy * u[1]) / T
    s = np.abs((dx * v[0] + dy * v[1]) / sw)
    return Frame(h, w, xs, ys, t, s, sw, T)


@dataclass
class Head:
    """Face polygons and head zones (the face fields are None when no face is known)."""

    face_in: np.ndarray  # uint8: jaw + brows (face whatever its colour)
    face_out: np.ndarray  # uint8: jaw + lifted brows (face where skin coloured)
    face_core: np.ndarray  # uint8: skin-colour seed (cheeks / forehead)
    head_zone: np.ndarray  # bool
    hair_zone: np.ndarray  # bool
    ear_zone: np.ndarray | None = None
    chin: np.ndarray | None = None
    up: np.ndarray | None = None  # unit vector chin -> nose bridge
    fh: float = 0.0
    fw: float = 0.0
    centre: np.ndarray | None = None
    d_face: np.ndarray | None = None  # distance (px) to face_out
    above_mouth: np.ndarray | None = None  # bool: above the chin by ABOVE_MOUTH face heights (no garment, no neck)


def head_geometry(fr: Frame, body: Body, cfg: HeuristicParsingConfig) -> Head:
    h, w, xs, ys, t = fr.h, fr.w, fr.xs, fr.ys, fr.t
    face_in = np.zeros((h, w), np.uint8)
    face_out = np.zeros((h, w), np.uint8)
    face_core = np.zeros((h, w), np.uint8)
    f = body.face
    if f is None:
        head_zone = np.zeros((h, w), bool)
        hair_zone = np.zeros((h, w), bool)
        hp = [body.j[i] for i in (0, 15, 16, 17, 18) if body.j[i] is not None]
        if hp:
            c = np.mean(hp, 0)
            r = HEAD_DISC * fr.sw
            head_zone = ((xs - c[0]) ** 2 + (ys - c[1]) ** 2) < r * r
            hair_zone = head_zone | ((np.abs(xs - c[0]) < HAIR_BAND_SW * fr.sw) & (t < HAIR_BAND_T_NOFACE)
                                     & (ys > c[1]))
        return Head(face_in, face_out, face_core, head_zone, hair_zone)
    jaw = f[0:17]
    brows = f[17:27][::-1]
    chin = f[8]
    up = f[27] - chin
    fh = float(np.linalg.norm(up))
    up = up / max(fh, 1e-6)
    fw = float(np.linalg.norm(f[0] - f[16]))
    lifted = brows + cfg.forehead_lift * fh * up
    cv2.fillPoly(face_in, [np.round(np.vstack([jaw, brows - BROW_INSET * fh * up])).astype(np.int32)], 1)
    cv2.fillPoly(face_out, [np.round(np.vstack([jaw, lifted])).astype(np.int32)], 1)
    # seed for the skin colour: cheeks/forehead without eyes, brows, nostrils and mouth
    cv2.fillPoly(face_core, [np.round(np.vstack([jaw, brows])).astype(np.int32)], 1)
    face_core = cv2.erode(face_core, np.ones((3, 3), np.uint8), iterations=max(1, int(CORE_ERODE * fw)))
    holes = np.zeros_like(face_core)
    for idx in FACE_FEATURES:
        cv2.fillPoly(holes, [cv2.convexHull(np.round(f[list(idx)]).astype(np.int32))], 1)
    holes = cv2.dilate(holes, np.ones((3, 3), np.uint8), iterations=max(1, int(FEATURE_DILATE * fw)))
    face_core &= 1 - holes
    centre = np.vstack([jaw, lifted]).mean(0)
    d_face = cv2.distanceTransform(1 - face_out, cv2.DIST_L2, 3)
    above_chin = ((xs - chin[0]) * up[0] + (ys - chin[1]) * up[1]) > -CHIN_MARGIN * fh
    head_zone = (d_face < HEAD_ZONE * fw) & above_chin
    # ears: beside the face, above the mouth corners' level
    mouth_lvl = ((xs - f[48][0]) * up[0] + (ys - f[48][1]) * up[1] > 0) | \
        ((xs - f[54][0]) * up[0] + (ys - f[54][1]) * up[1] > 0)
    ear_zone = (d_face < EAR_ZONE * fw) & mouth_lvl & above_chin
    # long hair: beside the head down to the chest
    band = (np.abs(xs - centre[0]) < HAIR_BAND * fw) & (t < HAIR_BAND_T) & ~above_chin
    hair_zone = head_zone | band
    above_mouth = ((xs - chin[0]) * up[0] + (ys - chin[1]) * up[1]) > ABOVE_MOUTH * fh
    return Head(face_in, face_out, face_core, head_zone, hair_zone, ear_zone, chin, up, fh, fw, centre, d_face,
                above_mouth)


@dataclass
class Limbs:
    """Distances (px) to the limb chains, and ``cand``: the normalised distance of every pixel to the five
    skin-showing parts (left / right arm, left / right leg, neck-chest), float32 (5, h, w)."""

    d_arm_l: np.ndarray
    d_arm_r: np.ndarray
    d_leg_l: np.ndarray
    d_leg_r: np.ndarray
    d_feet: np.ndarray
    cand: np.ndarray
    d_chain_l: np.ndarray  # distance (px) to the left shoulder-elbow-wrist chain (no hand)
    d_chain_r: np.ndarray


def limb_distances(fr: Frame, body: Body, cfg: HeuristicParsingConfig) -> Limbs:
    shape, j = (fr.h, fr.w), body.j
    arm_l = limb_lines(body, (5, 6, 7))
    arm_r = limb_lines(body, (2, 3, 4))
    hand_l, hand_r = hand_segments(body, "L", 7), hand_segments(body, "R", 4)
    leg_l = limb_lines(body, (12, 13, 14)) + [(j[14], j[k]) for k in (19, 21)
                                              if j[14] is not None and j[k] is not None]
    leg_r = limb_lines(body, (9, 10, 11)) + [(j[11], j[k]) for k in (22, 24)
                                             if j[11] is not None and j[k] is not None]
    # hands are thinner than arms: their distance counts more
    chain_l, chain_r = chain_map(shape, arm_l), chain_map(shape, arm_r)
    d_arm_l = np.minimum(chain_l, chain_map(shape, hand_l) * cfg.hand_scale)
    d_arm_r = np.minimum(chain_r, chain_map(shape, hand_r) * cfg.hand_scale)
    d_leg_l = chain_map(shape, leg_l)
    d_leg_r = chain_map(shape, leg_r)
    feet = []
    for a_, toes in ((14, (19, 20, 21)), (11, (22, 23, 24))):
        for k in toes:
            if j[a_] is not None and j[k] is not None:
                feet.append((j[a_], j[k]))
    for k1, k2 in ((19, 21), (22, 24)):
        if j[k1] is not None and j[k2] is not None:
            feet.append((j[k1], j[k2]))
    d_feet = chain_map(shape, feet)
    ra = cfg.arm_radius * fr.sw
    t, s, T = fr.t, fr.s, fr.torso
    leg_pen = cfg.leg_above_crotch_penalty * np.clip(CROTCH_T - t, 0, None)
    cand = np.empty((5, fr.h, fr.w), np.float32)  # written in place (no np.stack copy); every term is float32
    np.divide(d_arm_l, ra, out=cand[0])
    np.divide(d_arm_r, ra, out=cand[1])
    # an arm is at most ARM_REACH radii thick: skin farther from both chains (a bare midriff between the
    # forearms) is torso skin, whatever the nearest chain
    cand[0][cand[0] > ARM_REACH] += FAR_PART
    cand[1][cand[1] > ARM_REACH] += FAR_PART
    np.add(d_leg_l / (cfg.leg_radius_ratio * ra), leg_pen, out=cand[2])
    np.add(d_leg_r / (cfg.leg_radius_ratio * ra), leg_pen, out=cand[3])
    # neck / chest: close to the torso axis above the neck and at the neckline, penalised (x2) below it
    np.divide(s * fr.sw + np.clip(-t, 0, None) * T + 2.0 * np.clip(t - NECKLINE_T, 0, None) * T,
              NECK_RADIUS * ra, out=cand[4])
    return Limbs(d_arm_l, d_arm_r, d_leg_l, d_leg_r, d_feet, cand, chain_l, chain_r)
