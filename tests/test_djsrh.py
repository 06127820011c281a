"""DJSRH: joint-semantics matrix and loss against their formulas (naive loops), end-to-end, label independence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import flat_log, map_at_all, rand64, sign_codes, synthetic_multilabel

from nrchbench.errors import ConfigError
from nrchbench.methods import create_method
from nrchbench.methods.base import TrainData
from nrchbench.methods.djsrh import (
    DJSRH,
    djsrh_joint_similarity,
    djsrh_loss,
    resolve_similarity_map,
)


def _cos(a: list[float], b: list[float]) -> float:
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


def _joint_loop(fi: torch.Tensor, ft: torch.Tensor, beta: float, eta: float, map_i: str, map_t: str) -> list:
    m = fi.shape[0]

    def mapped(f: torch.Tensor, how: str) -> list:
        rows = f.tolist()
        out = [[_cos(rows[i], rows[j]) for j in range(m)] for i in range(m)]
        if how == "affine":
            return [[2 * v - 1 for v in r] for r in out]
        return [[min(1.0, max(-1.0, v)) for v in r] for r in out]

    si, st = mapped(fi, map_i), mapped(ft, map_t)
    s_tilde = [[beta * si[i][j] + (1 - beta) * st[i][j] for j in range(m)] for i in range(m)]
    return [
        [(1 - eta) * s_tilde[i][j] + eta * sum(s_tilde[i][k] * s_tilde[j][k] for k in range(m)) / m for j in range(m)]
        for i in range(m)
    ]


@pytest.mark.parametrize(("map_i", "map_t"), [("affine", "affine"), ("affine", "clamp"), ("clamp", "clamp")])
def test_joint_similarity_equals_formula(map_i: str, map_t: str) -> None:
    fi = rand64(5, 7, seed=1).abs()
    ft = rand64(5, 3, seed=2)
    got = djsrh_joint_similarity(fi, ft, 0.3, 0.4, map_i, map_t)
    np.testing.assert_allclose(
        got.numpy(), np.array(_joint_loop(fi, ft, 0.3, 0.4, map_i, map_t)), rtol=1e-10, atol=1e-12
    )
    assert torch.allclose(got, got.T)


def test_loss_equals_formula() -> None:
    m, bits, mu, lam1, lam2 = 4, 6, 1.5, 0.1, 0.3
    ci, ct = torch.tanh(rand64(m, bits, seed=3)), torch.tanh(rand64(m, bits, seed=4))
    target = mu * djsrh_joint_similarity(rand64(m, 5, seed=5).abs(), rand64(m, 3, seed=6).abs(), 0.6, 0.4)
    bi = [[v / math.sqrt(sum(x * x for x in r)) for v in r] for r in ci.tolist()]
    bt = [[v / math.sqrt(sum(x * x for x in r)) for v in r] for r in ct.tolist()]

    def mse(a: list, b: list) -> float:
        tot = 0.0
        for i in range(m):
            for j in range(m):
                tot += (sum(a[i][k] * b[j][k] for k in range(bits)) - float(target[i, j])) ** 2
        return tot / (m * m)

    cross, img, txt = mse(bi, bt), mse(bi, bi), mse(bt, bt)
    total, c, li, lt = djsrh_loss(ci, ct, target, lam1, lam2)
    assert float(c) == pytest.approx(cross, rel=1e-10)
    assert float(li) == pytest.approx(img, rel=1e-10)
    assert float(lt) == pytest.approx(txt, rel=1e-10)
    assert float(total) == pytest.approx(cross + lam1 * img + lam2 * txt, rel=1e-10)


def test_similarity_map_auto_follows_feature_sign() -> None:
    assert resolve_similarity_map("auto", torch.rand(4, 3)) == "affine"
    assert resolve_similarity_map("auto", torch.rand(4, 3) - 0.5) == "clamp"
    assert resolve_similarity_map("affine", torch.rand(4, 3) - 0.5) == "affine"
    with pytest.raises(ConfigError):
        resolve_similarity_map("sigmoid", torch.rand(2, 2))


def test_dataset_params_follow_official_settings() -> None:
    assert DJSRH.dataset_params("mirflickr")["beta"] == 0.9
    wiki = DJSRH.dataset_params("wiki")
    assert (wiki["beta"], wiki["lambda1"], wiki["epochs"], wiki["lr_img"]) == (0.3, 0.3, 200, 1e-2)
    nus = DJSRH.dataset_params("nuswide")
    for other in ("iapr", "coco", "synthetic"):
        assert DJSRH.dataset_params(other) == nus
    assert set(nus) <= set(DJSRH.defaults)
    assert not DJSRH.uses_labels


# ------------------------------------------------------------------ end-to-end
def _fit(img: np.ndarray, txt: np.ndarray, labels: np.ndarray, seed: int = 0, **kw) -> tuple[DJSRH, list[dict]]:
    m = create_method("djsrh", bits=16, preset="tiny", **kw)
    logs: list[dict] = []
    view = TrainData(torch.from_numpy(img), torch.from_numpy(txt), torch.from_numpy(labels), torch.device("cpu"))
    m.fit(view, seed=seed, callback=lambda lg: logs.append(flat_log(lg)))
    return m, logs


def test_end_to_end_tiny_beats_chance() -> None:
    img, txt, labels = synthetic_multilabel(500, seed=0)
    q, tr = slice(0, 100), slice(100, None)
    m, logs = _fit(img[tr], txt[tr], np.zeros_like(labels[tr]))
    assert len(logs) == m.num_epochs
    assert [lg["alpha"] for lg in logs] == pytest.approx([math.sqrt(e + 1) for e in range(m.num_epochs)])
    for key in ("loss", "loss_cross", "loss_img", "loss_txt", "time_train"):
        assert all(np.isfinite(lg[key]) for lg in logs), key
    qi, qt = m.encode("image", torch.from_numpy(img[q])), m.encode("text", torch.from_numpy(txt[q]))
    ri, rt = m.encode("image", torch.from_numpy(img[tr])), m.encode("text", torch.from_numpy(txt[tr]))
    assert qi.shape == (100, 16) and rt.shape == (400, 16)
    chance = float(np.mean((labels[q] @ labels[tr].T > 0).mean(1)))
    i2t = map_at_all(sign_codes(qi), sign_codes(rt), labels[q], labels[tr])
    t2i = map_at_all(sign_codes(qt), sign_codes(ri), labels[q], labels[tr])
    assert i2t > chance + 0.05 and t2i > chance + 0.05, (i2t, t2i, chance)


def test_result_does_not_depend_on_labels() -> None:
    img, txt, labels = synthetic_multilabel(120, seed=2)
    flipped = (np.random.default_rng(0).random(labels.shape) < 0.5).astype(np.float32)
    outs = []
    for lab in (labels, flipped, np.zeros_like(labels)):
        m, _ = _fit(img, txt, lab, seed=7, epochs=2)
        outs.append(
            (sign_codes(m.encode("image", torch.from_numpy(img))), sign_codes(m.encode("text", torch.from_numpy(txt))))
        )
    for other in outs[1:]:
        assert np.array_equal(outs[0][0], other[0]) and np.array_equal(outs[0][1], other[1])
