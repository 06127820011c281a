"""UCCH: the pure functions against naive loops over their formulas (PEERS.md §4.2), and the
method class — its wiring against a hand-written official training epoch, the learning-rate
schedule against torch's scheduler used as the code uses it, label invariance and an
end-to-end tiny run through the runner."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from conftest import dot, tiny_run, unit_outputs, unit_rows

from nrchbench.methods import create_method
from nrchbench.methods.base import Rng, TrainData
from nrchbench.methods.ucch import (
    UCCH,
    contrastive_hash_loss,
    draw_negatives,
    init_memory,
    key_logits,
    learning_rate,
    ranking_loss,
    ucch_batch_loss,
    updated_memory,
    warmup_contrastive_loss,
)
from nrchbench.testing import mock_data

torch.set_num_threads(1)
F64 = torch.float64


def _sign(t: float) -> float:
    return float((t > 0) - (t < 0))


def _nll_first(logits: list[float]) -> float:
    """−log(exp(l_0) / Σ_r exp(l_r)), written out."""
    return -math.log(math.exp(logits[0]) / sum(math.exp(x) for x in logits))


# ----------------------------------------------------------------------------- memory bank
@pytest.mark.parametrize(("init", "p_plus"), [("code", 0.5 * math.erfc(0.5 / math.sqrt(2))), ("symmetric", 0.5)])
def test_init_memory(init, p_plus):
    V = init_memory(4000, 16, torch.Generator().manual_seed(0), init=init)
    assert V.shape == (4000, 16) and V.dtype == torch.float32
    torch.testing.assert_close(V.abs(), torch.full_like(V, 1 / 4))  # ±1/√L entries, unit rows
    # code: sign(2σz − σ) = sign(z − ½) is +1 with probability P(z > ½) ≈ 0.309
    assert (V > 0).double().mean().item() == pytest.approx(p_plus, abs=0.01)
    again = init_memory(4000, 16, torch.Generator().manual_seed(0), init=init)
    assert torch.equal(V, again)
    with pytest.raises(ValueError, match="init must be one of"):
        init_memory(3, 4, torch.Generator(), init="zeros")


@pytest.mark.parametrize("delta", [0.0, 0.4, 0.9])
def test_updated_memory_code_equals_loop(delta):
    n, L = 5, 6
    h, g = unit_outputs(n, L, 1)
    rows = unit_rows(torch.randn(n, L, generator=torch.Generator().manual_seed(2), dtype=F64))
    got = updated_memory(rows, h, g, delta)
    for i in range(n):
        mean = [(float(h[i, k]) + float(g[i, k])) / 2 for k in range(L)]
        nm = math.sqrt(sum(t * t for t in mean))
        new = [delta * float(rows[i, k]) + (1 - delta) * mean[k] / nm for k in range(L)]
        nn_ = math.sqrt(sum(t * t for t in new))
        for k in range(L):
            assert got[i, k].item() == pytest.approx(new[k] / nn_, rel=1e-12, abs=1e-14)
    if delta == 0.0:  # the warm-up: rows become normalise((h+g)/2)
        torch.testing.assert_close(got, unit_rows((h + g) / 2))


def test_updated_memory_paper_and_bad_switch():
    h, g = unit_outputs(4, 3, 3)
    rows = torch.randn(4, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    got = updated_memory(rows, h, g, 0.4, memory_update="paper")
    for i in range(4):
        for k in range(3):
            want = 0.4 * float(rows[i, k]) + 0.6 * (float(h[i, k]) + float(g[i, k])) / 2
            assert got[i, k].item() == pytest.approx(want, rel=1e-13)
    with pytest.raises(ValueError, match="memory_update must be one of"):
        updated_memory(rows, h, g, 0.4, memory_update="ema")


def test_updated_memory_carries_no_gradient():
    h, g = unit_outputs(3, 4, 5)
    h.requires_grad_(True)
    assert not updated_memory(torch.ones(3, 4, dtype=F64), h, g, 0.4).requires_grad


def test_draw_negatives_uniform_with_replacement():
    idx = draw_negatives(64, 4096, 50, torch.Generator().manual_seed(0))
    assert idx.shape == (64, 4096) and idx.dtype == torch.int64
    assert int(idx.min()) == 0 and int(idx.max()) == 49
    counts = torch.bincount(idx.flatten(), minlength=50).double()
    expected = idx.numel() / 50
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 100  # 49 degrees of freedom: P(χ² > 100) < 1e-4 under uniformity
    assert torch.equal(idx, draw_negatives(64, 4096, 50, torch.Generator().manual_seed(0)))
    row = draw_negatives(1, 10, 3, torch.Generator().manual_seed(1))[0]
    assert row.unique().numel() < 10  # with replacement (10 draws from 3 indices)


# ----------------------------------------------------------------------------- L_c
def test_key_logits_are_cosines_over_T():
    h, _ = unit_outputs(4, 9, 6)
    keys = torch.randint(0, 2, (4, 5, 9), generator=torch.Generator().manual_seed(6)).to(F64) * 2 - 1
    got = key_logits(h, keys, 0.9)
    for i in range(4):
        for r in range(5):
            cos = dot(keys[i, r], h[i]) / (math.sqrt(dot(keys[i, r], keys[i, r])) * math.sqrt(dot(h[i], h[i])))
            assert got[i, r].item() == pytest.approx(cos / 0.9, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("T", [0.9, 0.2])
@pytest.mark.parametrize(("L", "K"), [(8, 7), (3, 2)])  # N = 11 ≤ (K+1)·L: products route; else gather
def test_contrastive_hash_loss_equals_loop(T, L, K):
    n, N = 5, 11
    h, g = unit_outputs(n, L, 7)
    memory = torch.randn(N, L, generator=torch.Generator().manual_seed(7), dtype=F64)
    idx = torch.tensor([3, 0, 10, 5, 7])
    neg = draw_negatives(n, K, N, torch.Generator().manual_seed(8))
    neg[0, 0] = 3  # a negative equal to the positive's own index counts as a negative
    got = contrastive_hash_loss(h, g, memory, idx, neg, temperature=T)
    naive = 0.0
    for out in (h, g):
        for i in range(n):
            keys = [int(idx[i])] + [int(j) for j in neg[i]]
            logits = [
                sum(_sign(float(memory[r, k])) * float(out[i, k]) for k in range(L)) / (T * math.sqrt(L)) for r in keys
            ]
            naive += _nll_first(logits) / n
    assert got.item() == pytest.approx(naive, rel=1e-12)


@pytest.mark.parametrize("N", [10, 30])  # (K+1)·L = 24: products route, gather route
def test_contrastive_hash_loss_trains_the_nets_not_the_memory(N):
    h, g = unit_outputs(4, 6, 9)
    h.requires_grad_(True)
    memory = torch.randn(N, 6, dtype=F64, requires_grad=True)
    loss = contrastive_hash_loss(h, g, memory, torch.arange(4), torch.randint(0, N, (4, 3)))
    loss.backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert memory.grad is None


def test_warmup_loss_equals_loop():
    """Keys of row i: sign((h_j+g_j)/2), own first, then the n − 1 others (the code's order)."""
    n, L, T = 6, 5, 0.9
    h, g = unit_outputs(n, L, 10)
    keys = [[_sign((float(h[j, k]) + float(g[j, k])) / 2) for k in range(L)] for j in range(n)]
    naive = 0.0
    for out in (h, g):
        for i in range(n):
            order = [i] + [j for j in range(n) if j != i]
            logits = [sum(keys[j][k] * float(out[i, k]) for k in range(L)) / (T * math.sqrt(L)) for j in order]
            naive += _nll_first(logits) / n
    assert warmup_contrastive_loss(h, g, T).item() == pytest.approx(naive, rel=1e-12)


def test_warmup_keys_carry_no_gradient():
    h, g = unit_outputs(5, 4, 11)
    h.requires_grad_(True)
    (grad,) = torch.autograd.grad(warmup_contrastive_loss(h, g), h)
    # Only the query side: equal to the gradient with the keys given as constants.
    keys = ((h.detach() + g) / 2).sign()
    hc = h.detach().clone().requires_grad_(True)
    ref = torch.nn.functional.cross_entropy(hc @ keys.t() / (0.9 * 2.0), torch.arange(5))
    (grad_ref,) = torch.autograd.grad(ref, hc)
    torch.testing.assert_close(grad, grad_ref)


# ----------------------------------------------------------------------------- L_r
def _naive_ranking(h, g, m, s, tau, clamp_diag=False):
    n = h.shape[0]
    S = [[dot(h[i], g[j]) for j in range(n)] for i in range(n)]
    total = 0.0
    for transpose in (False, True):  # image anchors over texts, then text anchors over images
        for a in range(n):
            sim = [S[b][a] if transpose else S[a][b] for b in range(n)]
            c = [x if x >= sim[a] - m else x - s for x in sim]
            if clamp_diag:  # the NRCH/SCBCH reading, NOT UCCH's: only to show it differs
                c[a] = max(c[a], 0.0)
            total += (-c[a] + tau * math.log(sum(math.exp(x / tau) for x in c)) + m) / n
    return total


@pytest.mark.parametrize(
    ("m", "s", "tau"), [(0.2, 1.0, 1.0), (0.2, 0.1, 1.0), (0.0, 0.0, 1.0), (0.5, 2.0, 0.5), (-0.1, 1.0, 1.0)]
)
def test_ranking_loss_equals_loop(m, s, tau):
    h, g = unit_outputs(7, 6, 12)
    assert ranking_loss(h, g, margin=m, shift=s, tau=tau).item() == pytest.approx(
        _naive_ranking(h, g, m, s, tau), rel=1e-12
    )


def test_ranking_loss_does_not_clamp_the_diagonal():
    h, g = unit_outputs(5, 4, 13)
    g = g.clone()
    g[0] = -h[0]  # S_00 = −1 < 0: a clamp at 0 would change both terms
    got = ranking_loss(h, g, margin=0.2, shift=1.0).item()
    assert got == pytest.approx(_naive_ranking(h, g, 0.2, 1.0, 1.0), rel=1e-12)
    assert abs(got - _naive_ranking(h, g, 0.2, 1.0, 1.0, clamp_diag=True)) > 1e-3


# ----------------------------------------------------------------------------- total
def test_batch_loss_total_and_warmup_path():
    n, L, N = 6, 8, 20
    h, g = unit_outputs(n, L, 14)
    memory = init_memory(N, L, torch.Generator().manual_seed(14)).to(F64)
    idx = torch.tensor([1, 4, 9, 12, 15, 19])
    neg = draw_negatives(n, 30, N, torch.Generator().manual_seed(15))
    out = ucch_batch_loss(h, g, memory, idx, neg, alpha=0.7, temperature=0.9, margin=0.2, shift=0.1)
    assert out["loss_c"].item() == pytest.approx(contrastive_hash_loss(h, g, memory, idx, neg, 0.9).item(), rel=1e-14)
    assert out["loss_r"].item() == pytest.approx(_naive_ranking(h, g, 0.2, 0.1, 1.0), rel=1e-12)
    assert out["loss"].item() == pytest.approx(0.7 * out["loss_c"].item() + 0.3 * out["loss_r"].item(), rel=1e-14)
    warm = ucch_batch_loss(h, g, memory, idx, None, alpha=0.9)
    assert warm["loss_c"].item() == pytest.approx(warmup_contrastive_loss(h, g, 0.9).item(), rel=1e-14)
    assert warm["loss"].item() == pytest.approx(0.9 * warm["loss_c"].item() + 0.1 * warm["loss_r"].item(), rel=1e-14)


# ----------------------------------------------------------------------------- learning rate
def test_learning_rate_is_the_codes_multisteplr_use():
    """UCCH.py:225–228: ``step(start_epoch)`` before the loop, ``step(epoch)`` after each epoch."""
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([w], lr=1e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [30, 60, 90, 120], gamma=0.1)
    seen = []
    with warnings.catch_warnings():  # the epoch argument of step() is deprecated in torch
        warnings.simplefilter("ignore")
        sched.step(0)
        for epoch in range(130):
            seen.append(opt.param_groups[0]["lr"])
            sched.step(epoch)
    ours = [learning_rate(e, 1e-4, [30, 60, 90, 120], 0.1) for e in range(130)]
    assert ours == pytest.approx(seen, rel=1e-12)
    assert ours[30] == 1e-4 and ours[31] == pytest.approx(1e-5)


# ----------------------------------------------------------------------------- the method class
def test_presets_are_the_published_recipe_and_fast_is_the_fidelity_configuration():
    _, paper = UCCH.resolve_params("paper")
    assert (paper["hidden"], paper["epochs"], paper["batch_size"], paper["lr"], paper["weight_decay"]) == (
        8192,
        20,
        256,
        1e-4,
        1e-6,
    )
    assert (paper["alpha"], paper["margin"], paper["shift"], paper["temperature"]) == (0.7, 0.2, 0.1, 0.9)
    assert (paper["num_negatives"], paper["momentum"], paper["warmup_epochs"], paper["clip_norm"]) == (
        4096,
        0.4,
        1,
        1.0,
    )
    assert (paper["memory_update"], paper["memory_init"], paper["drop_last"]) == ("code", "code", True)
    _, fast = UCCH.resolve_params("fast")
    assert {k for k in fast if fast[k] != paper[k]} == {"hidden"} and fast["hidden"] == 1024
    for dataset in ("mirflickr", "wiki", "coco"):
        assert UCCH.resolve_params("paper", dataset=dataset)[1] == paper


def _setup(seed: int = 0, **params):
    data = mock_data().train
    data = TrainData(data.image, data.text, torch.zeros_like(data.labels), data.device)
    m = create_method("ucch", 16, "tiny", **params)
    m.setup(data, Rng(seed))
    return m, data


def _clone(g: torch.Generator) -> torch.Generator:
    c = torch.Generator()
    c.set_state(g.get_state())
    return c


def _reference_epochs(m, data, epochs):
    """Epochs as the official loop runs them (UCCH.py:147–166, NCEAverage.forward), on copies.

    Per batch (shuffled, drop_last): outputs; keys read from the bank (or in-batch keys in
    warm-up); the bank rows of the batch updated in the forward; the loss; one Adam step over
    both nets after clipping their total gradient norm at 1.
    """
    p = m.p
    img, txt = copy.deepcopy(m.img_net), copy.deepcopy(m.txt_net)
    params = [*img.parameters(), *txt.parameters()]
    opt = torch.optim.Adam(params, lr=p.lr, weight_decay=p.weight_decay)
    memory = m.memory_.clone()
    batches, negs = _clone(m._batch_gen), _clone(m._neg_gen)
    bs = p.batch_size
    for epoch in range(epochs):
        warm = epoch < p.warmup_epochs
        perm = torch.randperm(data.n, generator=batches)
        for s in range(0, data.n - bs + 1, bs):  # drop_last
            idx = perm[s : s + bs]
            h, g = img(data.image[idx]), txt(data.text[idx])
            neg = None if warm else draw_negatives(bs, p.num_negatives, data.n, negs)
            loss = ucch_batch_loss(
                h, g, memory, idx, neg, alpha=p.alpha, temperature=p.temperature, margin=p.margin, shift=p.shift
            )["loss"]
            memory[idx] = updated_memory(memory[idx], h, g, 0.0 if warm else p.momentum)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
    return img, txt, memory


def test_two_epochs_equal_the_official_loop():
    m, data = _setup()
    img, txt, memory = _reference_epochs(m, data, 2)
    logs = [m.train_epoch(e, data, Rng(0)) for e in range(2)]
    for a, b in zip([*m.img_net.parameters(), *m.txt_net.parameters()], [*img.parameters(), *txt.parameters()]):
        assert torch.equal(a, b)
    assert torch.equal(m.memory_, memory)
    for log in logs:
        assert set(log.losses) == {"loss", "loss_c", "loss_r"}
        assert log.values["lr"] == m.p.lr and 0.0 <= log.values["memory_flips"] <= 1.0
        assert log.weights is None and log.selected is None


def test_drop_last_leaves_the_skipped_rows_of_the_bank_untouched():
    m, data = _setup(batch_size=96)  # 250 rows: 2 batches, 58 rows skipped
    before = m.memory_.clone()
    gen = _clone(m._batch_gen)
    m.train_epoch(0, data, Rng(0))
    skipped = torch.randperm(data.n, generator=gen)[192:]
    changed = (m.memory_ != before).any(dim=1)
    assert not changed[skipped].any() and int(changed.sum()) == 192
    m, data = _setup(batch_size=96, drop_last=False)
    before = m.memory_.clone()
    m.train_epoch(0, data, Rng(0))
    assert bool((m.memory_ != before).any(dim=1).all())


def test_codes_are_bit_identical_across_label_matrices():
    """uses_labels = False: the labels are never read, whatever they hold."""
    base = mock_data()
    g = torch.Generator().manual_seed(3)
    outputs = []
    for labels in (
        torch.zeros_like(base.train.labels),
        base.train.labels,
        (torch.rand(base.train.labels.shape, generator=g) < 0.5).float(),
    ):
        data = TrainData(base.train.image, base.train.text, labels, base.train.device)
        m = create_method("ucch", 16, "tiny")
        m.fit(data, seed=1)
        outputs.append((m.encode("image", base.query_image), m.encode("text", base.query_text)))
    for img, txt in outputs[1:]:
        assert torch.equal(img, outputs[0][0]) and torch.equal(txt, outputs[0][1])
    assert UCCH.uses_labels is False


def test_end_to_end_tiny_run_is_above_chance_and_noise_invariant():
    recs = [tiny_run("ucch", noise_rate=r) for r in (0.2, 0.8)]
    d = [r.to_dict() for r in recs]
    assert all(r.status == "ok" for r in recs)
    for direction in ("i2t", "t2i"):
        assert d[0]["metrics"][direction]["map"] > d[0]["metrics"][direction]["chance"] + 0.02
        assert d[0]["metrics"][direction]["map"] == d[1]["metrics"][direction]["map"]
    assert recs[0].spec.noise_invariant
    assert [e["loss"] for e in d[0]["history"]] == [e["loss"] for e in d[1]["history"]]
