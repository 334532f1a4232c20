"""Approximate CIHP human parse from a photo, its mediapipe pose and person mask (no parsing model).

Modules: ``config`` (frozen config, label ids), ``body`` (keypoints at work resolution, limb segments),
``colour`` (Lab histograms, skin Gaussian), ``regions`` (torso coordinates, head geometry, limb distances),
``scores`` (skin / colour models, spatial priors, class map), ``labels`` (classes -> CIHP labels),
``parser`` (the back-end class `HeuristicParser`, ``parse_person``, ``parsing_miou``).

VITON-HD's ``image-parse-v3`` comes from a learned CIHP parser whose weights cannot be downloaded
here. This back-end rebuilds the labels a try-on pipeline needs from what ``MediapipePose`` already gives
(BlazePose person mask, BODY_25 / face-70 / hand-21 keypoints, BlazePose landmarks) plus per-image colour
models. It is a heuristic, hence ``APPROXIMATE = True``.

Output ids (CIHP): 0 background, 2 hair, 5 upper clothes, 6 dress (``category="dresses"``), 9 pants, 10
torso skin / neck, 12 skirt, 13 face, 14 / 15 left / right arm, 16 / 17 left / right leg, 18 / 19 left /
right shoe; left/right are the person's (14 sits on the image's right for a frontal person), taken from the
BODY_25 sides. Hat, glove, sunglasses, coat, socks and scarf are never written.

How (all at ``work_height`` rows, inside the person's box, vectorised numpy / OpenCV):

1. Person = BlazePose mask > 0.5. Face polygon = jaw (face points 0-16) + brows (17-26); the brows lifted
   by ``forehead_lift`` x brow-chin distance close the forehead. Without face points (FaceMesh failed) the
   70 points are synthesised from the two eyes with average face proportions.
2. Skin colour = robust Gaussian in Lab (a, b) fitted on the face without eyes / brows / nostrils / mouth
   (80 % trimmed, re-fitted 3x), times a smoothed histogram of its lightness (arms are shaded differently
   from faces). No face: hands, forearms and shins that look like skin in general; else a wide generic prior.
3. Colour models (smoothed 8x32x32 Lab histograms, mixed with a uniform share so that unseen colours -
   prints, sleeves of another colour - fall back to the spatial priors) from geometric seeds: hair = a cap
   above the forehead; upper garment = the middle of the torso (0.15-0.7 of the neck->mid-hip axis);
   lower garment = below the hips and along the thighs, away from the arms; shoes = around the feet. Skin
   coloured seed pixels are dropped unless most of the seed is skin coloured (a beige dress).
4. Spatial priors (log-score terms): hair only around the head and, penalised, beside the neck down to the
   chest; no garment above the chin; upper garment penalised below ``waist`` along the torso axis, lower
   garment above it (``prior_slope`` per torso length); skin penalised far from the arm / leg chains, the
   neck and the face and in the middle of the torso; hands (hand keypoint hulls) favour skin.
5. Per pixel argmax of the box-blurred scores; then the upper/lower boundary inside the torso is re-cut as
   one line (per column, the row that best separates the two garment scores, median-filtered across columns).
6. Labels: hair must touch the head outside the face polygon; skin goes to face (inside the face polygon,
   plus ears beside it above the mouth), else to the nearest of arm (shoulder-elbow-wrist, hand skeleton or
   BlazePose hand landmarks), leg (hip-knee-ankle-foot; only below the crotch and below the lower garment's
   hem) or neck/chest; the lower garment becomes a skirt when leg skin shows below its hem and it is not split
   between the legs there (shorts stay pants). Pieces smaller than ``min_part_frac`` of the person are
   merged into their neighbours, and the map is resized back (nearest + 3x3 median) onto the full-size mask.

Measured on this machine (``bench/bench_parsing.py``), full chain ``MediapipePose`` on the photo ->
``parse_person``, mIoU over HR-VITON's 13 groups (groups present in either map) against the official parses:

==========  =====  ====  ====  ====  =====  ======  =====  =====  =====  =====
image       mIoU   bg    hair  face  upper  bottom  l_arm  r_arm  l_leg  r_leg
==========  =====  ====  ====  ====  =====  ======  =====  =====  =====  =====
00891_00    0.881  0.98  0.76  0.91  0.91   0.92    0.81   -      -      -
03615_00    0.844  0.97  0.76  0.86  0.89   0.89    0.81   0.74   -      -
07445_00    0.683  0.98  0.86  0.88  0.66   0.88    0.21   0.27   0.59   0.83
00006_00    0.842  0.97  0.74  0.81  0.95   0.89    0.70   0.83   -      -
mean        0.812  0.98  0.78  0.86  0.85   0.89    0.63   0.61   0.59   0.83
==========  =====  ====  ====  ====  =====  ======  =====  =====  =====  =====

Four images are a smoke signal, not a benchmark. The same chain without face keypoints (synthetic face)
gives 0.79, without hand keypoints 0.79, without BlazePose landmarks 0.81. Time: ~30 ms per 768x1024 image
(about a third of the ``MediapipePose`` call; 13 bundled photos, 2-core CPU). A GrabCut refinement of the
person mask was tried and dropped: silhouette IoU 0.968 -> 0.967 for 200-300 ms per image.

Known failure modes:

* Tight long sleeves: CIHP parsers sometimes call them arms (07445_00: arms 0.21/0.27); this back-end always
  calls sleeves upper clothes (as the parses of 03615_00 and 00006_00 do).
* Hair whose colour matches the skin (blond) or the top (black hair on a black top) is cut by the spatial
  priors only; hair falling over the chest is often lost, and dark shaded neck skin can become hair.
* Top and bottom of the same colour: the waist line then follows the prior (``waist``), not the real hem;
  a long top covering the hips in an upper-body crop (no lower garment visible) gets its lower part called
  pants.
* Hands over the garments are found through the hand keypoints; a hand the hand model misses may become leg
  or garment. Bags and other held objects are labelled as the nearest garment or arm.
* Skirt vs shorts relies on a gap between the legs near the hem: shorts on closed legs become a skirt, a wide
  skirt on apart legs can become pants. Long skirts / maxi dresses under ``upper_body`` stay pants.
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
