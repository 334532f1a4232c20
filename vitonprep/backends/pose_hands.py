"""Hands of mediapipe Hands given to the person's body wrists (used by ``pose_mediapipe``)."""

from __future__ import annotations

import numpy as np

__all__ = ["assign_hands", "fill_hand"]


def assign_hands(hands: list, wrists: dict[str, np.ndarray], scale: float) -> dict[str, int]:
    """side -> index into ``hands``: nearest body wrist, the (flipped) label as a tie-breaker; two or more hands
    get the best joint assignment to the two sides."""

    def cost(pts: np.ndarray, label: str, side: str) -> float:
        return float(np.linalg.norm(pts[0] - wrists[side])) / scale + (0.0 if label == side else 0.25)

    if not hands:
        return {}
    if len(hands) == 1:
        pts, label, _ = hands[0]
        return {min("LR", key=lambda s: cost(pts, label, s)): 0}
    options = [(cost(hands[i][0], hands[i][1], "L") + cost(hands[j][0], hands[j][1], "R"), i, j)
               for i in range(len(hands)) for j in range(len(hands)) if i != j]
    _, i, j = min(options)
    return {"L": i, "R": j}


def fill_hand(out: np.ndarray, pts: np.ndarray, score: float) -> None:
    ok = np.isfinite(pts).all(1)
    out[ok, :2] = pts[ok]
    out[ok, 2] = float(np.clip(score, 1e-3, 1.0))
