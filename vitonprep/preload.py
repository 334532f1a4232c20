"""What every local build and validation worker needs, imported once by the forkserver the workers are forked from
(`vitonprep.runner.pool_context`): numpy, OpenCV, Pillow's image plugins, mediapipe and the pipeline's modules.

Importing this module has that one purpose; nothing here builds a model graph or starts a thread (a fork must not
copy either). It also fills OpenCV's RGB->Lab tables (~0.1 s on first use, built once here instead of in every
worker; a table is the same whoever builds it).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

import vitonprep.build_worker  # noqa: F401  (the worker's entry point and, through it, the stages)
import vitonprep.stages  # noqa: F401
import vitonprep.validate  # noqa: F401
from vitonprep.backends import (  # noqa: F401
    cloth_mask_opencv,
    densepose_approx,
    parsing_heuristic,
    person_mediapipe,
    pose_mediapipe,
)
from vitonprep.backends._mediapipe import import_mediapipe

import_mediapipe()
Image.preinit()
cv2.cvtColor(np.zeros((1, 1, 3), np.uint8), cv2.COLOR_RGB2Lab)
