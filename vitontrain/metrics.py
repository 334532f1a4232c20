"""Compatibility name for :mod:`vitontrain.evaluation` (the evaluation code lives there, split into extractors,
protocol, metrics and the run).

Kept only because ``tests/test_untrusted_train.py`` still imports ``vitontrain.metrics.real_person_images``; new code
imports :mod:`vitontrain.evaluation`. Remove this module once that test does.
"""

from vitontrain.evaluation import *  # noqa: F401,F403  (the names below, re-exported)
from vitontrain.evaluation import __all__  # noqa: F401
