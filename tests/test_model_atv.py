"""ATV loss on hand-made attention maps, at 4:3 and at other aspect ratios, against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vitontrain.models.atv import attention_centers, attention_tv_loss, region_on_grid


def one_hot_map(qh: int, qw: int, kh: int, kw: int, target) -> torch.Tensor:
    """[Nq, Nk] map where query (i, j) attends only to key ``target(i, j)``."""
    a = torch.zeros(qh * qw, kh * kw)
    for i in range(qh):
        for j in range(qw):
            ti, tj = target(i, j)
            a[i * qw + j, ti * kw + tj] = 1.0
    return a


def reference_tv(attn: torch.Tensor, region: torch.Tensor, qhw, khw) -> float:
    """Loop-by-loop transcription of the official ATV loss (head mean, expected coordinates, masked neighbour L1,
    batch mean)."""
    qh, qw = qhw
    kh, kw = khw
    a = attn.double().mean(dim=1) if attn.ndim == 4 else attn.double()
    b = a.shape[0]
    cen = [[[(0.0, 0.0)] * qw for _ in range(qh)] for _ in range(b)]
    for n in range(b):
        for i in range(qh):
            for j in range(qw):
                row = col = 0.0
                for ki in range(kh):
                    for kj in range(kw):
                        p = float(a[n, i * qw + j, ki * kw + kj])
                        row += p * ki
                        col += p * kj
                cen[n][i][j] = (row, col)
    sy = ny = sx = nx = 0.0
    for n in range(b):
        for i in range(qh):
            for j in range(qw):
                if i + 1 < qh and region[n, i, j] and region[n, i + 1, j]:
                    sy += sum(abs(cen[n][i + 1][j][c] - cen[n][i][j][c]) for c in range(2))
                    ny += 1
                if j + 1 < qw and region[n, i, j] and region[n, i, j + 1]:
                    sx += sum(abs(cen[n][i][j + 1][c] - cen[n][i][j][c]) for c in range(2))
                    nx += 1
    return (sy / ny if ny else 0.0) + (sx / nx if nx else 0.0)


def test_four_by_three_identity_and_corner_heads():
    # 4:3 query/key grid 4x3. Head 0: query (i,j) -> key (i,j); head 1: every query -> key (0,0).
    # Head mean puts every center at (i/2, j/2): each vertical pair differs by 0.5 in the row coordinate,
    # each horizontal pair by 0.5 in the column coordinate -> TV = 0.5 + 0.5 = 1.0 with the full region.
    h0 = one_hot_map(4, 3, 4, 3, lambda i, j: (i, j))
    h1 = one_hot_map(4, 3, 4, 3, lambda i, j: (0, 0))
    attn = torch.stack([h0, h1])[None]  # [B=1, heads=2, 12, 12]
    region = torch.ones(1, 4, 3, dtype=torch.bool)
    centers = attention_centers(attn, (4, 3))
    assert torch.allclose(centers[0, 3 * 3 + 2], torch.tensor([1.5, 1.0]))
    assert attention_tv_loss(attn, region, (4, 3), (4, 3)).item() == pytest.approx(1.0)


def test_four_by_three_partial_region_hand_value():
    # Query (i,j) -> key (3-i, 2j mod 3) (a flip and a column shuffle); region = rows 1-2 only.
    # Vertical pairs inside: (1,j)-(2,j) for j=0..2 -> 3 pairs, |Δrow| = 1, |Δcol| = 0 -> 1.0.
    # Horizontal pairs inside: rows 1,2 x (0,1),(1,2) -> 4 pairs; cols of (2j mod 3) = 0,2,1:
    # |0-2| = 2 and |2-1| = 1 per row -> (2+1)*2 / 4 = 1.5. Total 2.5.
    attn = one_hot_map(4, 3, 4, 3, lambda i, j: (3 - i, (2 * j) % 3))[None]
    region = torch.zeros(1, 4, 3, dtype=torch.bool)
    region[0, 1:3] = True
    assert attention_tv_loss(attn, region, (4, 3), (4, 3)).item() == pytest.approx(2.5)


def test_square_grid_hand_value_and_batch_level_mean():
    # 1:1 grid 3x3 (the official 4:3 reconstruction, dx = sqrt(9/12) -> 0, cannot even reshape this).
    # Sample 0: query (i,j) -> key (j,i) (transpose), full region: vertical pair (i,j)-(i+1,j): centers (j,i),(j,i+1)
    #   -> |Δ| = 1, 6 pairs; horizontal likewise 6 pairs of 1.
    # Sample 1: region empty -> contributes no pairs (batch-level denominators) -> TV = 6/6 + 6/6 = 2.
    attn0 = one_hot_map(3, 3, 3, 3, lambda i, j: (j, i))
    attn1 = torch.full((9, 9), 1 / 9)
    attn = torch.stack([attn0, attn1])  # [B=2, 9, 9] (already head-averaged)
    region = torch.zeros(2, 3, 3, dtype=torch.bool)
    region[0] = True
    assert attention_tv_loss(attn, region, (3, 3), (3, 3)).item() == pytest.approx(2.0)


def test_three_by_four_grid_hand_value():
    # 3:4 (landscape) grid 3x4, query (i,j) -> key (0, j): rows never change, column step 1.
    # Vertical: 2*4 = 8 pairs of 0; horizontal: 3*3 = 9 pairs of 1 -> TV = 0 + 1 = 1.
    attn = one_hot_map(3, 4, 3, 4, lambda i, j: (0, j))[None, None].repeat(1, 8, 1, 1)
    region = torch.ones(1, 3, 4, dtype=torch.bool)
    assert attention_tv_loss(attn, region, (3, 4), (3, 4)).item() == pytest.approx(1.0)


@pytest.mark.parametrize("qhw", [(8, 6), (6, 6), (6, 8), (5, 7)])
def test_random_maps_match_loop_reference(qhw):
    g = torch.Generator().manual_seed(sum(qhw))
    n = qhw[0] * qhw[1]
    attn = torch.softmax(torch.randn(2, 4, n, n, generator=g) * 3, dim=-1)
    region = torch.rand(2, *qhw, generator=g) > 0.3
    got = attention_tv_loss(attn, region, qhw, qhw).item()
    assert got == pytest.approx(reference_tv(attn, region, qhw, qhw), rel=1e-5)


def test_region_resize_matches_official_inverted_mask_logic():
    g = torch.Generator().manual_seed(3)
    m = (torch.rand(2, 1, 64, 48, generator=g) > 0.5).float()
    m[0, 0, :4, :4] = 0.5  # soft values behave like the official code too
    official = ~(F.interpolate(1 - m, (32, 24)).squeeze(1) >= 0.5)  # mask1 = 1 - m; ~attn_mask_resize(mask1)
    assert torch.equal(region_on_grid(m, (32, 24)), official)
    assert torch.equal(region_on_grid(m, (32, 24)), m[:, 0, ::2, ::2] > 0.5)  # nearest = top-left sampling


def test_float_mask_input_and_empty_batch_is_zero_not_nan():
    attn = torch.softmax(torch.randn(1, 2, 12, 12), dim=-1)
    assert attention_tv_loss(attn, torch.zeros(1, 1, 32, 24), (4, 3), (4, 3)).item() == 0.0
    full = attention_tv_loss(attn, torch.ones(1, 1, 32, 24), (4, 3), (4, 3))
    assert math.isfinite(full.item()) and full.item() > 0


def test_loss_is_differentiable_wrt_logits():
    logits = torch.randn(1, 2, 12, 12, requires_grad=True)
    loss = attention_tv_loss(logits.softmax(-1), torch.ones(1, 4, 3, dtype=torch.bool), (4, 3), (4, 3))
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_shape_errors_are_explicit():
    with pytest.raises(ValueError, match="key grid"):
        attention_tv_loss(torch.rand(1, 12, 12), torch.ones(1, 4, 3, dtype=torch.bool), (4, 3), (3, 3))
    with pytest.raises(ValueError, match="query grid"):
        attention_tv_loss(torch.rand(1, 12, 12), torch.ones(1, 3, 4, dtype=torch.bool), (4, 3), (4, 3))
