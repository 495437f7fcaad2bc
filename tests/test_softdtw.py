"""softDTW: values against tslearn, gradients against finite differences and an autograd
reference, numerical safety at gamma = 0.001, both implementations, the float32 inference
sweep against the float64 recursion, band, cross distances."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tslearn.metrics import SoftDTW as TslearnSoftDTW
from tslearn.metrics import soft_dtw as tslearn_soft_dtw

from pipeline.align import softdtw_float32
from pipeline.align.distance import pairwise_distance, soft_dtw_cross, typical_distance
from pipeline.align.softdtw import soft_dtw

IMPLEMENTATIONS = ("numba", "torch")


def _devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _squared_euclidean(n: int, m: int, seed: int, batch: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, 3, generator=g, dtype=torch.float64)
    y = torch.randn(batch, m, 3, generator=g, dtype=torch.float64)
    return x, y, torch.cdist(x, y).square()  # (B, N, M)


def _cosine_cost(n: int, m: int, seed: int, batch: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(batch, n, 16, generator=g, dtype=torch.float64), dim=-1)
    y = F.normalize(torch.randn(batch, m, 16, generator=g, dtype=torch.float64), dim=-1)
    return (1.0 - x @ y.transpose(1, 2)).to(dtype)  # (B, N, M)


def _reference(cost: torch.Tensor, gamma: float, band: int = 0) -> torch.Tensor:
    """The recursion written out cell by cell with real infinities; autograd differentiates it."""
    n, m = cost.shape
    inf = torch.tensor(math.inf, dtype=torch.float64)
    r = [[inf] * (m + 1) for _ in range(n + 1)]
    r[0][0] = torch.tensor(0.0, dtype=torch.float64)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if band and abs(i - j * n / m) > band:
                continue
            previous = torch.stack([r[i - 1][j - 1], r[i - 1][j], r[i][j - 1]])
            r[i][j] = cost[i - 1, j - 1] - gamma * torch.logsumexp(-previous / gamma, dim=0)
    return r[n][m]


def _hard_dtw(cost: np.ndarray) -> float:
    n, m = cost.shape
    r = np.full((n + 1, m + 1), np.inf)
    r[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            r[i, j] = cost[i - 1, j - 1] + min(r[i - 1, j - 1], r[i - 1, j], r[i, j - 1])
    return float(r[n, m])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_values_and_gradients_equal_tslearn(implementation):
    for seed, (n, m) in enumerate([(7, 11), (16, 9), (1, 5), (23, 24)]):
        x, y, cost = _squared_euclidean(n, m, seed)
        cost.requires_grad_(True)
        for gamma in (1.0, 0.1, 0.01, 0.001):
            value = soft_dtw(cost, gamma, implementation=implementation)
            expected = tslearn_soft_dtw(x[0].numpy(), y[0].numpy(), gamma=gamma)
            assert value.item() == pytest.approx(expected, rel=1e-5)
            (grad,) = torch.autograd.grad(value.sum(), cost)
            reference = TslearnSoftDTW(cost[0].detach().numpy(), gamma=gamma)
            reference.compute()
            np.testing.assert_allclose(grad[0].numpy(), reference.grad(), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("gamma", [1.0, 0.1])
def test_gradcheck(implementation, gamma):
    cost = _cosine_cost(4, 6, seed=1, batch=2).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda c: soft_dtw(c, gamma, implementation=implementation), (cost,)
    )
    banded = _cosine_cost(7, 5, seed=2, batch=1).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda c: soft_dtw(c, gamma, band=2, implementation=implementation), (banded,)
    )


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_small_gamma_gradients_are_finite_and_exact(implementation):
    cost = _cosine_cost(9, 6, seed=3, batch=4)
    for band in (0, 3):
        cost.requires_grad_(True)
        values = soft_dtw(cost, 0.001, band=band, implementation=implementation)
        (grad,) = torch.autograd.grad(values.sum(), cost)
        assert torch.isfinite(grad).all()
        for b in range(cost.shape[0]):
            pair = cost[b].detach().clone().requires_grad_(True)
            expected = _reference(pair, 0.001, band)
            (expected_grad,) = torch.autograd.grad(expected, pair)
            assert values[b].item() == pytest.approx(expected.item(), rel=1e-12)
            torch.testing.assert_close(grad[b], expected_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_float32_stays_finite_at_small_gamma(implementation):
    for t in (8, 32, 64):
        cost64 = _cosine_cost(t, t, seed=t, batch=6)
        cost = cost64.float().requires_grad_(True)
        values = soft_dtw(cost, 0.001, implementation=implementation)
        values.sum().backward()
        assert values.dtype == torch.float32 and cost.grad.dtype == torch.float32
        assert torch.isfinite(values).all() and torch.isfinite(cost.grad).all()
        torch.testing.assert_close(values.double(), soft_dtw(cost64, 0.001), rtol=1e-5, atol=1e-5)
    clips = torch.randn(5, 64, 32, requires_grad=True)
    distances = soft_dtw_cross(clips, clips, gamma=0.001, implementation=implementation)
    distances.sum().backward()
    assert torch.isfinite(distances).all() and torch.isfinite(clips.grad).all()


def _assert_float32_precision(values: torch.Tensor, expected: torch.Tensor, n: int, m: int):
    # float32 rounds each of the n + m - 1 sums along a path: 1e-6 of the value, or of n + m
    # costs of about 1 where the value is near 0 (it can be, for gamma = 1)
    assert values.dtype == torch.float32 and torch.isfinite(values).all()
    torch.testing.assert_close(values.double(), expected, rtol=1e-6, atol=1e-6 * (n + m))


def test_float32_sweep_equals_float64_recursion():
    shapes = [(8, 8, 0), (16, 16, 0), (32, 32, 0), (64, 64, 0), (7, 13, 0), (20, 9, 4), (64, 64, 3)]
    for seed, (n, m, band) in enumerate(shapes):
        # 70 pairs: one full group of lanes and one part-filled
        cost = _cosine_cost(n, m, seed=seed, batch=70, dtype=torch.float32)
        for gamma in (1.0, 0.1, 0.01, 0.001):
            with torch.no_grad():
                values = soft_dtw(cost.requires_grad_(True), gamma, band=band)
            expected = soft_dtw(cost.detach().double(), gamma, band=band)
            _assert_float32_precision(values, expected, n, m)
            # the public path without a graph is the float32 sweep itself
            grid = cost.detach().permute(1, 2, 0).unsqueeze(0)  # (1, N, M, B)
            direct = softdtw_float32.forward(grid, gamma, band)[0]
            torch.testing.assert_close(values, direct, rtol=0, atol=0)


def test_float32_sweep_lanes_are_independent():
    cost = _cosine_cost(12, 10, seed=20, batch=130, dtype=torch.float32)
    together = soft_dtw(cost, 0.01)
    for b in (0, 63, 64, 127, 129):
        torch.testing.assert_close(soft_dtw(cost[b : b + 1], 0.01), together[b : b + 1])


def test_float32_sweep_stays_finite_on_extreme_costs():
    for t in (1, 16, 64):
        tied = torch.zeros(3, t, t)  # identical clips: every path costs 0, all cells tie
        opposite = torch.full((3, t, t), 2.0)  # cosine cost at its largest
        for cost in (tied, opposite):
            for gamma in (1.0, 0.001, 1e-40):
                with torch.no_grad():
                    values = soft_dtw(cost, gamma)
                expected = soft_dtw(cost.double(), gamma)
                _assert_float32_precision(values, expected, t, t)
    # gamma so small that log2(e) / gamma is past float32's range: the hard DTW
    cost = _cosine_cost(9, 11, seed=21, batch=2, dtype=torch.float32)
    hard = torch.tensor([_hard_dtw(c.double().numpy()) for c in cost], dtype=torch.float64)
    torch.testing.assert_close(soft_dtw(cost, 1e-40).double(), hard, rtol=1e-6, atol=0)


def test_float32_cross_distances_at_small_gamma():
    g = torch.Generator().manual_seed(22)
    for t in (16, 32, 64):
        queries = torch.randn(9, t, 32, generator=g)
        exemplars = torch.cat([queries[:2], torch.randn(70, t, 32, generator=g)])  # with repeats
        with torch.no_grad():
            distances = soft_dtw_cross(queries, exemplars, gamma=0.001, block_pairs=300)
        expected = soft_dtw_cross(queries.double(), exemplars.double(), gamma=0.001)
        _assert_float32_precision(distances, expected, t, t)


def test_tends_to_hard_dtw_as_gamma_falls():
    _, _, cost = _squared_euclidean(12, 17, seed=5)
    hard = _hard_dtw(cost[0].numpy())
    gaps = []
    for gamma in (1.0, 0.1, 0.01, 0.001):
        soft = soft_dtw(cost, gamma).item()
        # softmin lies between min - gamma log 3 and min, cell by cell along the path
        assert -1e-12 <= hard - soft <= gamma * math.log(3) * (12 + 17)
        gaps.append(hard - soft)
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-2


def test_torch_sweep_equals_numba_kernels():
    for seed, (n, m, band) in enumerate([(16, 16, 0), (7, 13, 0), (20, 9, 4), (12, 12, 2)]):
        for gamma in (1.0, 0.001):
            cost = _cosine_cost(n, m, seed=seed, batch=5).requires_grad_(True)
            values = soft_dtw(cost, gamma, band=band, implementation="numba")
            (grad,) = torch.autograd.grad(values.sum(), cost)
            for device in _devices():
                on_device = cost.detach().to(device).requires_grad_(True)
                swept = soft_dtw(on_device, gamma, band=band, implementation="torch")
                (swept_grad,) = torch.autograd.grad(swept.sum(), on_device)
                torch.testing.assert_close(swept.cpu(), values, rtol=1e-12, atol=1e-12)
                torch.testing.assert_close(swept_grad.cpu(), grad, rtol=1e-9, atol=1e-12)


def test_no_grad_path_equals_grad_path():
    cost = _cosine_cost(10, 14, seed=7, batch=37)
    with torch.no_grad():
        quick = soft_dtw(cost.requires_grad_(True), 0.001)
    torch.testing.assert_close(quick, soft_dtw(cost, 0.001).detach(), rtol=0, atol=0)


def test_band():
    cost = _cosine_cost(10, 8, seed=8, batch=3).requires_grad_(True)
    free = soft_dtw(cost, 0.1)
    torch.testing.assert_close(soft_dtw(cost, 0.1, band=18), free)
    banded = soft_dtw(cost, 0.1, band=2)
    # fewer admissible paths: a larger soft minimum
    assert (banded > free + 1e-6).all()
    for b in range(3):
        assert banded[b].item() == pytest.approx(_reference(cost[b].detach(), 0.1, 2).item())
    (grad,) = torch.autograd.grad(banded.sum(), cost)
    i = torch.arange(1, 11).unsqueeze(1)
    j = torch.arange(1, 9).unsqueeze(0)
    outside = (i - j * 10 / 8).abs() > 2  # (N, M)
    assert (grad[:, outside] == 0).all() and (grad[:, ~outside] != 0).any()
    with pytest.raises(ValueError, match="band=1 leaves no warping path .* band >= 4"):
        soft_dtw(_cosine_cost(10, 2, seed=9, batch=1), 0.1, band=1)


def test_rejects_bad_arguments():
    cost = _cosine_cost(4, 5, seed=10, batch=2)
    with pytest.raises(ValueError, match=r"\(B, N, M\)"):
        soft_dtw(cost[0], 0.1)
    with pytest.raises(TypeError, match="float32 or float64"):
        soft_dtw(cost.to(torch.float16), 0.1)
    with pytest.raises(ValueError, match="gamma must be positive"):
        soft_dtw(cost, 0.0)
    with pytest.raises(ValueError, match="band must be an integer"):
        soft_dtw(cost, 0.1, band=-1)
    with pytest.raises(ValueError, match="implementation must be one of auto, numba, torch"):
        soft_dtw(cost, 0.1, implementation="cuda")


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_cross_equals_loop_over_pairs(implementation):
    g = torch.Generator().manual_seed(11)
    queries = torch.randn(5, 6, 8, generator=g, dtype=torch.float64, requires_grad=True)
    exemplars = torch.randn(7, 9, 8, generator=g, dtype=torch.float64, requires_grad=True)
    for block_pairs in (3, 10_000):
        cross = soft_dtw_cross(
            queries, exemplars, 0.01, block_pairs=block_pairs, implementation=implementation
        )
        loop = torch.stack(
            [
                torch.stack(
                    [
                        soft_dtw(
                            (1 - F.normalize(q, dim=-1) @ F.normalize(e, dim=-1).T)[None], 0.01
                        )[0]
                        for e in exemplars
                    ]
                )
                for q in queries
            ]
        )  # (Nq, Ne)
        torch.testing.assert_close(cross, loop, rtol=1e-12, atol=1e-12)
        weights = torch.randn(5, 7, generator=g, dtype=torch.float64)
        cross_grads = torch.autograd.grad((cross * weights).sum(), (queries, exemplars))
        loop_grads = torch.autograd.grad((loop * weights).sum(), (queries, exemplars))
        for got, expected in zip(cross_grads, loop_grads, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


def test_pairwise_distance_kinds():
    g = torch.Generator().manual_seed(12)
    queries = torch.randn(4, 6, 5, generator=g, dtype=torch.float64)
    exemplars = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        pairwise_distance(queries, exemplars, "softdtw", gamma=0.1),
        soft_dtw_cross(queries, exemplars, gamma=0.1),
    )
    pooled = pairwise_distance(queries, exemplars, "pooled_cosine", gamma=0.1)
    framewise = pairwise_distance(queries, exemplars, "framewise_cosine", gamma=0.1)
    for a in range(4):
        for b in range(3):
            cos = F.cosine_similarity(queries[a].mean(0), exemplars[b].mean(0), dim=0)
            assert pooled[a, b].item() == pytest.approx(1 - cos.item())
            per_frame = 1 - F.cosine_similarity(queries[a], exemplars[b], dim=-1)  # (T,)
            assert framewise[a, b].item() == pytest.approx(per_frame.mean().item())
    with pytest.raises(ValueError, match="equal length"):
        pairwise_distance(queries, exemplars[:, :4], "framewise_cosine", gamma=0.1)
    with pytest.raises(ValueError, match="softdtw, pooled_cosine, framewise_cosine"):
        pairwise_distance(queries, exemplars, "euclidean", gamma=0.1)
    assert typical_distance("softdtw", 16) == 16.0
    assert typical_distance("pooled_cosine", 16) == 1.0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_paired_batches_of_any_size_equal_one_pair_at_a_time(implementation):
    # the paired path lays batches out in rows of GRID_WIDTH pairs and pads the last row:
    # sizes around the row width and the kernels' lanes must all give every pair its own value
    for pairs in (1, 31, 33, 64, 65, 130):
        cost = _cosine_cost(6, 5, seed=30 + pairs, batch=pairs).requires_grad_(True)
        values = soft_dtw(cost, 0.01, implementation=implementation)
        weights = torch.linspace(0.5, 1.5, pairs, dtype=torch.float64)
        (grad,) = torch.autograd.grad((values * weights).sum(), cost)
        assert values.shape == (pairs,) and grad.shape == cost.shape
        for b in (0, pairs // 2, pairs - 1):
            pair = cost[b : b + 1].detach().requires_grad_(True)
            alone = soft_dtw(pair, 0.01, implementation=implementation)
            (alone_grad,) = torch.autograd.grad(alone.sum() * weights[b], pair)
            torch.testing.assert_close(values[b : b + 1], alone, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(grad[b : b + 1], alone_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_equal_finite_differences_at_small_gamma(dtype):
    # central differences of the float64 recursion, on a cost nudged well inside one soft
    # path; the float32 path's gradient is the float64 one rounded to float32
    cost64 = _cosine_cost(8, 7, seed=40, batch=70)
    cost = cost64.to(dtype).requires_grad_(True)
    (grad,) = torch.autograd.grad(soft_dtw(cost, 0.001).sum(), cost)
    assert grad.dtype == dtype and torch.isfinite(grad).all()
    cost64 = cost.detach().double()
    step = 1e-7
    for b, i, j in [(0, 0, 0), (5, 3, 2), (33, 7, 6), (69, 4, 4), (64, 1, 5)]:
        plus, minus = cost64.clone(), cost64.clone()
        plus[b, i, j] += step
        minus[b, i, j] -= step
        difference = (soft_dtw(plus[b : b + 1], 0.001) - soft_dtw(minus[b : b + 1], 0.001)) / (
            2 * step
        )
        assert grad[b, i, j].item() == pytest.approx(difference.item(), abs=1e-4)


def test_float32_gradients_equal_float64_gradients():
    g = torch.Generator().manual_seed(41)
    clips = torch.randn(70, 16, 32, generator=g)
    grads = {}
    for dtype in (torch.float32, torch.float64):
        leaf = clips.to(dtype).requires_grad_(True)
        distances = soft_dtw_cross(leaf, leaf, gamma=0.001)
        (grads[dtype],) = torch.autograd.grad(distances.sum(), leaf)
        assert distances.dtype == dtype and torch.isfinite(grads[dtype]).all()
    torch.testing.assert_close(
        grads[torch.float32].double(), grads[torch.float64], rtol=1e-4, atol=1e-5
    )
