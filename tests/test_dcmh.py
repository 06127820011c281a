"""DCMH: each loss term against its formula (naive loops), the code update, end-to-end on a tiny set."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import flat_log, map_at_all, rand64, sign_codes, synthetic_multilabel

from nrchbench.errors import ConfigError
from nrchbench.methods import create_method
from nrchbench.methods.base import TrainData
from nrchbench.methods.dcmh import (
    DCMH,
    dcmh_balance,
    dcmh_nll,
    dcmh_quantization,
    dcmh_update_codes,
    label_similarity,
    learning_rates,
)


def test_nll_equals_formula() -> None:
    f, g = rand64(3, 4, seed=1) * 3, rand64(5, 4, seed=2) * 3
    s = (torch.rand(3, 5, generator=torch.Generator().manual_seed(3)) > 0.5).double()
    expected = 0.0
    for i in range(3):
        for j in range(5):
            theta = 0.5 * sum(float(f[i, k] * g[j, k]) for k in range(4))
            expected -= float(s[i, j]) * theta - math.log(1.0 + math.exp(theta))
    assert float(dcmh_nll(f, g, s)) == pytest.approx(expected, rel=1e-10)


def test_nll_is_overflow_safe() -> None:
    f = torch.full((1, 2), 100.0)
    g = torch.full((1, 2), 100.0)  # θ = 1e4: log(1+e^θ) overflows without softplus
    assert float(dcmh_nll(f, g, torch.ones(1, 1))) == pytest.approx(0.0, abs=1e-3)
    assert float(dcmh_nll(f, g, torch.zeros(1, 1))) == pytest.approx(1e4, rel=1e-6)


def test_quantization_equals_formula() -> None:
    b, f = torch.sign(rand64(3, 4, seed=4)), rand64(3, 4, seed=5)
    expected = sum(float(b[i, k] - f[i, k]) ** 2 for i in range(3) for k in range(4))
    assert float(dcmh_quantization(b, f)) == pytest.approx(expected, rel=1e-12)


def test_balance_uses_fresh_batch_rows_and_buffer_elsewhere() -> None:
    buf, f = rand64(6, 4, seed=6), rand64(2, 4, seed=7)
    index = torch.tensor([4, 1])
    total = [0.0] * 4
    for k in range(4):
        total[k] += float(f[0, k]) + float(f[1, k])
        for j in range(6):
            if j not in (1, 4):
                total[k] += float(buf[j, k])
    expected = sum(t * t for t in total)
    assert float(dcmh_balance(f, buf, index)) == pytest.approx(expected, rel=1e-10)


def test_code_update_is_sign_of_sum_with_zero_to_plus_one() -> None:
    f = torch.tensor([[1.0, -2.0, 0.5, 0.0], [-0.25, 3.0, 0.0, -1.0]])
    g = torch.tensor([[-1.0, 1.0, -1.0, 0.0], [0.25, -4.0, 0.0, 0.5]])
    b = dcmh_update_codes(f, g)
    expected = [[1.0, -1.0, -1.0, 1.0], [1.0, -1.0, 1.0, -1.0]]
    assert b.tolist() == expected


def test_label_similarity_shares_at_least_one_label() -> None:
    a = torch.tensor([[1.0, 0, 0], [0, 0, 0]])
    b = torch.tensor([[1.0, 1, 0], [0, 1, 1], [0, 0, 0]])
    assert label_similarity(a, b).tolist() == [[1, 0, 0], [0, 0, 0]]


def test_learning_rate_schedules() -> None:
    lr = 10**-1.5
    pt = learning_rates("pytorch", lr, 500)
    assert len(pt) == 500 and pt[0] == pytest.approx(lr)
    assert np.allclose(pt, np.linspace(lr, 1e-6, 501)[:500])
    assert learning_rates("tf", lr, 500)[-1] == pytest.approx(1e-6)
    ml = learning_rates("matlab", lr, 500)
    assert ml[0] == pytest.approx(lr) and ml[-1] == pytest.approx(1e-3)
    with pytest.raises(ConfigError):
        learning_rates("adam", lr, 10)


def test_params_and_hook() -> None:
    assert DCMH.dataset_params("mirflickr") == {}
    assert create_method("dcmh", bits=16, preset="paper").p.epochs == 500
    with pytest.raises(ConfigError):
        create_method("dcmh", bits=16, image_head="cnn")


# ------------------------------------------------------------------ end-to-end
def _tiny_view(img: np.ndarray, txt: np.ndarray, labels: np.ndarray) -> TrainData:
    t = torch.from_numpy
    return TrainData(t(img), t(txt), t(labels), torch.device("cpu"))


def test_end_to_end_tiny_beats_chance_clearly() -> None:
    img, txt, labels = synthetic_multilabel(500, seed=0)
    q, tr = slice(0, 100), slice(100, None)
    m = create_method("dcmh", bits=16, preset="tiny")
    logs: list[dict] = []
    m.fit(_tiny_view(img[tr], txt[tr], labels[tr]), seed=0, callback=lambda lg: logs.append(flat_log(lg)))
    assert len(logs) == m.num_epochs
    for key in ("loss", "loss_nll", "loss_quant", "loss_balance", "lr", "time_img", "time_txt", "time_b"):
        assert all(np.isfinite(lg[key]) for lg in logs), key
    assert logs[-1]["loss_nll"] < logs[0]["loss_nll"]
    parts = {"q": q, "db": tr}
    enc = {
        (mod, k): m.encode(mod, torch.from_numpy(x[s]))
        for k, s in parts.items()
        for mod, x in (("image", img), ("text", txt))
    }
    for (_, k), out in enc.items():
        assert out.shape == (len(labels[parts[k]]), 16) and torch.isfinite(out).all()
    chance = float(np.mean((labels[q] @ labels[tr].T > 0).mean(1)))
    i2t = map_at_all(sign_codes(enc["image", "q"]), sign_codes(enc["text", "db"]), labels[q], labels[tr])
    t2i = map_at_all(sign_codes(enc["text", "q"]), sign_codes(enc["image", "db"]), labels[q], labels[tr])
    assert i2t > chance + 0.15 and t2i > chance + 0.15, (i2t, t2i, chance)


def test_fit_is_reproducible_for_a_seed() -> None:
    img, txt, labels = synthetic_multilabel(200, seed=1)
    outs = []
    for _ in range(2):
        m = create_method("dcmh", bits=8, preset="tiny", epochs=2)
        m.fit(_tiny_view(img, txt, labels), seed=3)
        outs.append(m.encode("text", torch.from_numpy(txt)))
    assert torch.equal(outs[0], outs[1])


def test_standardize_uses_training_statistics_at_encode_time() -> None:
    img, txt, labels = synthetic_multilabel(120, seed=4)
    m = create_method("dcmh", bits=8, preset="tiny", epochs=1, standardize=True)
    m.fit(_tiny_view(img, txt, labels), seed=0)
    x = torch.from_numpy(img[:5])
    mean, std = torch.from_numpy(img).mean(0), torch.from_numpy(img).std(0)
    expected = m.img_net((x - mean) / torch.where(std > 1e-8, std, torch.ones_like(std)))
    assert torch.allclose(m.encode("image", x), expected, atol=1e-5)
