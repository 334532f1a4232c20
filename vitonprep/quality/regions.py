"""The parse's garment regions judged against the person photo itself: where the parse ends the top garment and
starts the trousers or skirt, the photo must show a hem (``hem_edge``)."""

from __future__ import annotations

import cv2
import numpy as np

from vitonprep.quality.config import QualityConfig
from vitonprep.quality.report import Outcome

__all__ = ["hem_edge"]

#: CIHP upper clothes, dress, coat (the garment above a hem) and pants, skirt (the garment below it)
_TOP_LUT, _BOTTOM_LUT = np.zeros(256, bool), np.zeros(256, bool)
_TOP_LUT[[5, 6, 7]], _BOTTOM_LUT[[9, 12]] = True, True
#: judged at half size: a hem is a line across the body, hundreds of pixels long; 2 px cells do not move it
_HEM_SCALE = 2
#: an edge counts within this many half-size pixels (about 5 px of the full size) of the parse's boundary: the
#: parser's outline and the photo's hem line differ by a few pixels on a sound parse
_HEM_TOLERANCE = 2
#: a boundary shorter than this (half-size pixels, 80 px of the full size) is no hem but a sliver where a hand or
#: a sleeve end crosses; it gives no score
_MIN_HEM = 40
_NEIGHBOURS = np.ones((3, 3), np.uint8)
_TOLERANCE = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * _HEM_TOLERANCE + 1, 2 * _HEM_TOLERANCE + 1))


def hem_edge(image: np.ndarray, parse: np.ndarray, cfg: QualityConfig) -> Outcome | None:
    """``hem_edge``: share of the parse's boundary between the top garment (upper clothes, dress, coat) and the
    bottom one (pants, skirt) that lies on an edge of the person photo.

    A top ends at its hem, which the photo shows as a line: a change of colour, or on a same-colour outfit the
    hem's fold and shadow. A boundary drawn through one uniform fabric - a white top's lower third parsed as
    white shorts, a black jacket's lower third as black trousers, a one-piece dress split into top and pants -
    runs along no edge. The evidence is the photo's own gradients (Canny), not the parser's output. A patterned
    fabric has edges everywhere, so a boundary through a print passes: the check can only see uniform fabric cut.
    """
    if image.shape[:2] != parse.shape:
        return None
    small = parse[::_HEM_SCALE, ::_HEM_SCALE]
    bottom = _BOTTOM_LUT[small]
    rows = np.flatnonzero(bottom.any(1))
    if len(rows) == 0:
        return None
    # only the rows around the bottom garment can hold the boundary: the top of the canvas is left out
    y0, y1 = max(0, int(rows[0]) - 2), min(small.shape[0], int(rows[-1]) + 3)
    top = _TOP_LUT[small[y0:y1]]
    if not top.any():
        return None
    boundary = (cv2.dilate(top.view(np.uint8), _NEIGHBOURS) > 0) & bottom[y0:y1]
    ys, xs = np.nonzero(boundary)
    if len(ys) < _MIN_HEM:
        return None
    # the photo's edges on the box around the boundary (grown so the blur and the tolerance see their neighbours)
    by0, by1 = max(0, int(ys.min()) - 8), min(boundary.shape[0], int(ys.max()) + 9)
    bx0, bx1 = max(0, int(xs.min()) - 8), min(boundary.shape[1], int(xs.max()) + 9)
    sy, sx = slice((y0 + by0) * _HEM_SCALE, (y0 + by1) * _HEM_SCALE), slice(bx0 * _HEM_SCALE, bx1 * _HEM_SCALE)
    grey = cv2.cvtColor(np.ascontiguousarray(image[sy, sx][::_HEM_SCALE, ::_HEM_SCALE]), cv2.COLOR_RGB2GRAY)
    # the thresholds photo_foreground uses on the garment photo: a fold's shadow on plain fabric passes 20/60
    edges = cv2.dilate(cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 20, 60), _TOLERANCE) > 0
    on_edge = edges & boundary[by0:by1, bx0:bx1]
    share = np.count_nonzero(on_edge) / len(ys)
    if share >= cfg.min_hem_edge:
        return Outcome("hem_edge", share)
    return Outcome("hem_edge", share, f"{100 * (1 - share):.0f} % of the boundary between the top garment and the "
                                      "trousers/skirt runs through plain fabric (no hem in the photo): one garment "
                                      "was split in two, e.g. a top's lower part parsed as trousers")
