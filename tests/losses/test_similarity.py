import pytest
import torch
from sentence_transformers import util as st_util

from spladekit.losses import similarity


def _pair(dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(4, dim, generator=generator, dtype=torch.float64),
            torch.randn(4, dim, generator=generator, dtype=torch.float64))


def test_all_pairs_match_a_loop_reference():
    a, b = _pair(6)
    b = torch.cat([b, b[:1] * 0])  # a zero row: cosine 0
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            dot = float(sum(a[i, k] * b[j, k] for k in range(6)))
            assert similarity.dot_score(a, b)[i, j].item() == pytest.approx(dot)
            norm = max(a[i].norm().item(), 1e-12) * max(b[j].norm().item(), 1e-12)
            assert similarity.cos_sim(a, b)[i, j].item() == pytest.approx(dot / norm)


def test_pairwise_match_a_loop_reference():
    a, b = _pair(6)
    for i in range(4):
        diff = [a[i, k].item() - b[i, k].item() for k in range(6)]
        dot = sum(a[i, k].item() * b[i, k].item() for k in range(6))
        assert similarity.pairwise_dot_score(a, b)[i].item() == pytest.approx(dot)
        assert similarity.pairwise_cos_sim(a, b)[i].item() == pytest.approx(dot / (a[i].norm() * b[i].norm()).item())
        assert similarity.pairwise_euclidean_sim(a, b)[i].item() == pytest.approx(-sum(d * d for d in diff) ** 0.5)
        assert similarity.pairwise_manhattan_sim(a, b)[i].item() == pytest.approx(-sum(abs(d) for d in diff))


@pytest.mark.parametrize("dim", [6, 7])
def test_angle_sim_is_the_complex_inner_product(dim):
    a, b = _pair(dim)
    padded = dim + dim % 2
    a_p = torch.nn.functional.pad(a, (0, padded - dim))
    b_p = torch.nn.functional.pad(b, (0, padded - dim))
    a_p, b_p = a_p / a_p.norm(dim=1, keepdim=True), b_p / b_p.norm(dim=1, keepdim=True)
    half = padded // 2
    u = torch.complex(a_p[:, :half], a_p[:, half:])
    w = torch.complex(b_p[:, :half], b_p[:, half:])
    inner = (u * w.conj()).sum(dim=1)  # Re = cos, Im = sin of the angle between them
    torch.testing.assert_close(similarity.pairwise_angle_sim(a, b), (inner.real + inner.imag).abs())


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (similarity.dot_score, st_util.dot_score),
        (similarity.cos_sim, st_util.cos_sim),
        (similarity.pairwise_dot_score, st_util.pairwise_dot_score),
        (similarity.pairwise_cos_sim, st_util.pairwise_cos_sim),
        (similarity.pairwise_euclidean_sim, st_util.pairwise_euclidean_sim),
        (similarity.pairwise_manhattan_sim, st_util.pairwise_manhattan_sim),
        (similarity.pairwise_angle_sim, st_util.pairwise_angle_sim),
    ],
)
def test_same_as_sentence_transformers(ours, theirs):
    a, b = _pair(7, seed=3)
    torch.testing.assert_close(ours(a, b), theirs(a, b))
