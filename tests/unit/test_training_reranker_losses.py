"""The reranker's hand-written losses against torch's own functions on hand-made score grids."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from backbone.training.reranker_losses import distill_kl, listwise_ce, pointwise_bce

# Two queries: the first with 3 negatives, the second with 1 (its last two cells are padding).
SCORES = torch.tensor([[2.0, 0.5, -1.0, 1.5], [0.3, 1.2, 9.0, -9.0]])
TEACHER = torch.tensor([[0.82, 0.80, 0.60, 0.85], [0.70, 0.75, 0.0, 0.0]])
VALID = torch.tensor([[True, True, True, True], [True, True, False, False]])
ROWS = [slice(0, 4), slice(0, 2)]


def _kl_reference(temperature: float) -> torch.Tensor:
    # KL(p_teacher || q_student) of each query alone, by torch's kl_div (which takes log q and p), then averaged.
    per_query = [
        F.kl_div(
            F.log_softmax(SCORES[row, cells], dim=0),
            F.softmax(TEACHER[row, cells] / temperature, dim=0),
            reduction="sum",
        )
        for row, cells in enumerate(ROWS)
    ]
    return torch.stack(per_query).mean()


def _ce_reference() -> torch.Tensor:
    per_query = [F.cross_entropy(SCORES[row, cells].unsqueeze(0), torch.tensor([0])) for row, cells in enumerate(ROWS)]
    return torch.stack(per_query).mean()


def test_bce_is_torchs_over_the_real_pairs_only() -> None:
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    pairs = torch.tensor([2.0, 0.5, -1.0, 1.5, 0.3, 1.2])
    expected = F.binary_cross_entropy_with_logits(pairs, labels)
    assert pointwise_bce(SCORES, VALID).item() == pytest.approx(expected.item(), abs=1e-6)


def test_listwise_ce_is_torchs_cross_entropy_per_list() -> None:
    assert listwise_ce(SCORES, VALID).item() == pytest.approx(_ce_reference().item(), abs=1e-6)
    # By hand for the short list: -log(e^0.3 / (e^0.3 + e^1.2)) = log(1 + e^0.9)
    assert listwise_ce(SCORES[1:, :2], VALID[1:, :2]).item() == pytest.approx(math.log1p(math.exp(0.9)), abs=1e-6)


@pytest.mark.parametrize("temperature", [0.05, 1.0])
def test_distill_kl_is_torchs_kl_div_per_list(temperature: float) -> None:
    loss = distill_kl(SCORES, TEACHER, VALID, temperature)
    assert loss.item() == pytest.approx(_kl_reference(temperature).item(), abs=1e-6)
    assert loss.item() > 0.05  # the two distributions differ: the reference value is not trivially 0


def test_distill_kl_mixes_in_the_listwise_ce_by_its_weight() -> None:
    mixed = distill_kl(SCORES, TEACHER, VALID, 0.05, ce_weight=0.25)
    expected = 0.75 * _kl_reference(0.05) + 0.25 * _ce_reference()
    assert mixed.item() == pytest.approx(expected.item(), abs=1e-6)
    assert distill_kl(SCORES, TEACHER, VALID, 0.05, ce_weight=1.0).item() == pytest.approx(_ce_reference().item())


def test_distill_kl_is_zero_when_the_reranker_matches_the_teacher_and_padding_passes_no_nan() -> None:
    scores = (TEACHER / 0.05 + 3.0).requires_grad_()  # a shift per list leaves the softmax unchanged
    loss = distill_kl(scores, TEACHER, VALID, 0.05)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    distill_kl(scores * 0.5, TEACHER, VALID, 0.05).backward()
    assert torch.isfinite(scores.grad).all()
    assert scores.grad[1, 2:].abs().max().item() == 0.0  # padding cells get no gradient
