"""Approximate CIHP human parse from a photo, its mediapipe pose and person mask (no parsing model).

Modules: ``config`` (frozen config, label ids), ``body`` (keypoints at work resolution, limb segments),
``colour`` (Lab histograms, skin Gaussian), ``regions`` (torso coordinates, head geometry, limb distances),
``scores`` (skin / colour models, spatial priors, class map), ``labels`` (classes -> CIHP labels),
``parser`` (the back-end class `HeuristicParser`, ``parse_person``, ``parsing_miou``).

VITON-HD's ``image-parse-v3`` comes from a learned CIHP parser whose weights cannot be downloaded
here. This back-end rebuilds the labels a try-on pipeline needs from what ``MediapipePose`` already gives
(BlazePose person mask, BODY_25 / face-70 / hand-21 keypoints, BlazePose landmarks) plus per-image colour
models. It is a heuristic, hence ``APPROXIMATE = True``.

Output ids (CIHP): 0 background, 2 hair, 5 upper clothes, 6 dress (a one-piece garment), 9 pants, 10
torso skin / neck, 12 skirt, 13 face, 14 / 15 left / right arm, 16 / 17 left / right leg, 18 / 19 left /
right shoe; left/right are the person's (14 sits on the image's right for a frontal person), taken from the
BODY_25 sides. Hat, glove, sunglasses, coat, socks and scarf are never written.

How (all at ``work_height`` rows, inside the person's box, vectorised numpy / OpenCV):

1. Person = BlazePose mask > 0.5. Face polygon = jaw (face points 0-16) + brows (17-26); the brows lifted
   by ``forehead_lift`` x brow-chin distance close the forehead. Without face points (FaceMesh failed) the
   70 points are synthesised from the two eyes with average face proportions; when the eyes are above the
   frame (a head cut at the top), from BlazePose's extrapolated eyes with the chin on the jaw line found above
   the neck (``Body.refine_cut_chin``).
2. Skin colour = robust Gaussian in Lab (a, b) fitted on the face without eyes / brows / nostrils / mouth
   (80 % trimmed, re-fitted 3x), times a smoothed histogram of its lightness (arms are shaded differently
   from faces). No face: hands, forearms and shins that look like skin in general; else a wide generic prior.
3. Colour models (smoothed 8x32x32 Lab histograms, mixed with a uniform share so that unseen colours -
   prints, sleeves of another colour - fall back to the spatial priors) from geometric seeds: hair = a cap
   above the forehead (beside the face when the cap is out of frame); upper garment = the middle of the torso
   (0.15-0.7 of the neck->mid-hip axis); lower garment = below the hips and along the thighs, away from the
   arms; shoes = around the feet. Skin coloured seed pixels are dropped unless most of the seed is skin
   coloured (a beige dress). The upper and lower seeds' colour similarity is kept for the dress decision.
4. Spatial priors (log-score terms): hair only around the head and, penalised, beside the neck down to the
   chest; no garment above the mouth; upper garment penalised below ``waist`` along the torso axis, lower
   garment above it (``prior_slope`` per torso length); skin penalised far from the arm / leg chains, the
   neck and the face and in the middle of the torso; hands (hand keypoint hulls) favour skin; a sleeved
   arm's chain keeps the lower garment off its forearm; below the ankles garments yield to the shoe model.
5. Per pixel argmax of the box-blurred scores; then the upper/lower boundary inside the torso is re-cut as
   one line (per column, the row that best separates the two garment scores plus a bonus for a horizontal
   lightness edge - a hem, a waistband -, with only 0.3 of the waist prior; median-filtered across columns);
   garment strips thinner than 0.1 shoulder widths along a limb are skin.
6. Labels: hair must touch the head outside the face polygon; skin above the mouth outside face and ears is
   hair; skin goes to face (inside the face polygon, plus ears beside it above the mouth), else to the
   nearest of arm (shoulder-elbow-wrist, hand skeleton or BlazePose hand landmarks; at most 1.6 arm radii
   away), leg (hip-knee-ankle-foot; only below the crotch and below the lower garment's hem) or neck/chest;
   the lower garment becomes a skirt when leg skin shows below its hem and it is not split between the legs
   (shorts stay pants); top and bottom become one dress when their seeds share a colour (similarity >= 0.9,
   >= 0.6 when the pair's category is ``dresses``) and the bottom does not end at a crotch - the category is
   a prior, the photo decides; a skirt's or dress's pixels below its hem along a leg are leg. Pieces smaller
   than ``min_part_frac`` of the person are merged into their neighbours, and the map is resized back
   (nearest + 3x3 median) onto the full-size mask.

Measured (``bench/bench_parsing.py``), full chain ``MediapipePose`` on the photo -> ``parse_person``, mIoU over
HR-VITON's 13 groups against the official parses, before (commit aee6528) and after issue 18's fixes:

==========  =====  =====  ====  ====  ====  =====  ======  =====  =====  =====  =====
image       old    mIoU   bg    hair  face  upper  bottom  l_arm  r_arm  l_leg  r_leg
==========  =====  =====  ====  ====  ====  =====  ======  =====  =====  =====  =====
00891_00    0.882  0.890  0.98  0.76  0.91  0.93   0.93    0.84   -      -      -
03615_00    0.844  0.856  0.97  0.76  0.86  0.91   0.92    0.80   0.77   -      -
07445_00    0.689  0.722  0.98  0.86  0.88  0.66   0.91    0.21   0.28   0.88   0.84
00006_00    0.843  0.836  0.97  0.74  0.81  0.95   0.90    0.64   0.83   -      -
==========  =====  =====  ====  ====  ====  =====  ======  =====  =====  =====  =====

Four images are a smoke signal, not a benchmark; docs/parsing.md has the by-eye counts on the graded set. Time:
~41 ms per 768x1024 image on one thread, 1.2x the parser before the fixes (pose + parser 1.05x).

Known failure modes (docs/parsing.md lists them with the photos that show them):

* Tight long sleeves: CIHP parsers sometimes call them arms (07445_00: arms 0.21/0.28); this back-end always
  calls sleeves upper clothes (as the parses of 03615_00 and 00006_00 do).
* Same-colour top and shorts with a dress category: the colours say one garment and shorts on closed legs do
  not end at a visible crotch, so they become one dress; a dress over opaque tights stays top + pants.
* A shaded hand next to dark trousers, skin in a V neckline of a dark dress: colour still wins there. Bags
  and other held objects are labelled as the nearest garment or arm (no object evidence).
* Long hair falling over a shoulder with a head cut at the top can become arm or neck; a soft jaw line leaves
  the chin of such a head as neck.
* The person mask bounds everything: a second person in the mask, or a mask that misses a limb, carries over.
"""

from __future__ import annotations

from vitonprep.backends.parsing_heuristic.config import CATEGORIES, OUTPUT_LABELS, HeuristicParsingConfig
from vitonprep.backends.parsing_heuristic.parser import APPROXIMATE, NAME, HeuristicParser, parse_person, parsing_miou

__all__ = [
    "NAME",
    "APPROXIMATE",
    "CATEGORIES",
    "OUTPUT_LABELS",
    "HeuristicParsingConfig",
    "HeuristicParser",
    "parse_person",
    "parsing_miou",
]
