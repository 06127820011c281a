"""Feature transforms (nrchbench.datasets.transforms): train-only statistics, shapes, idempotence."""

from __future__ import annotations

import numpy as np
import pytest

from nrchbench.datasets import FEATURE_TRANSFORMS, apply_feature_transform, load_dataset
from nrchbench.errors import ConfigError, DataError

N, TRAIN = 200, np.arange(40, 140)


def _data(seed: int = 0, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Dense signed image features and sparse binary text, with a constant and an unused column."""
    rng = np.random.default_rng(seed)
    image = (rng.normal(3.0, 2.0, size=(N, 12)) * scale).astype(np.float32)
    image[:, 5] = 7.0 * scale  # constant everywhere
    text = (rng.random((N, 30)) < 0.08).astype(np.float32)
    text[:, 3] = 0.0
    text[TRAIN[-1] + 1 :, 3] = 1.0  # a word used only outside the training rows
    return image, text


def _poisoned(x: np.ndarray, value: float) -> np.ndarray:
    out = x.copy()
    mask = np.ones(N, dtype=bool)
    mask[TRAIN] = False
    out[mask] = value
    return out


@pytest.mark.parametrize("name", ["zscore", "scale", "l2"])
@pytest.mark.parametrize("poison", [1e6, np.nan, -3.0])
def test_statistics_come_from_the_training_rows_only(name: str, poison: float) -> None:
    image, text = _data()
    img, txt, info = apply_feature_transform(name, image, text, TRAIN)
    p_img, p_txt, p_info = apply_feature_transform(name, _poisoned(image, poison), _poisoned(text, poison), TRAIN)
    np.testing.assert_array_equal(p_img[TRAIN], img[TRAIN])
    np.testing.assert_array_equal(p_txt[TRAIN], txt[TRAIN])
    if name != "l2":  # l2 fits nothing; its info counts zero rows over all rows
        assert p_info == info


def test_zscore_is_train_standardised_and_constant_dims_are_zero() -> None:
    image, text = _data()
    img, txt, info = apply_feature_transform("zscore", image, text, TRAIN)
    keep = np.ones(12, dtype=bool)
    keep[5] = False
    np.testing.assert_allclose(img[TRAIN][:, keep].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(img[TRAIN][:, keep].std(0), 1, atol=1e-4)
    # the mean/std applied to other rows are the training ones, not those of all rows
    mu = image[TRAIN].astype(np.float64).mean(0)
    sd = image[TRAIN].astype(np.float64).std(0)
    np.testing.assert_allclose(img[0, keep], ((image[0] - mu) / np.where(sd > 0, sd, 1))[keep], rtol=1e-5)
    assert (img[:, 5] == 0).all() and (txt[:, 3] == 0).all()  # constant on train → 0 in every row
    assert info["image"]["constant_dims"] >= 1 and info["text"]["constant_dims"] >= 1
    assert info["name"] == "zscore" and info["fit_rows"] == TRAIN.size and info["image"]["dim"] == 12


def test_scale_sets_the_training_mean_norm_to_sqrt_d_with_one_factor() -> None:
    image, text = _data(scale=1e-3)
    img, txt, info = apply_feature_transform("scale", image, text, TRAIN)
    for x, y, key in ((image, img, "image"), (text, txt, "text")):
        d = x.shape[1]
        assert np.linalg.norm(y[TRAIN].astype(np.float64), axis=1).mean() == pytest.approx(np.sqrt(d), rel=1e-5)
        factor = info[key]["factor"]
        np.testing.assert_allclose(y, x * factor, rtol=1e-6)  # one scalar: signs, zeros, angles kept
        assert info[key]["target_norm"] == pytest.approx(np.sqrt(d))
    # the native scale no longer matters
    img1, _, _ = apply_feature_transform("scale", *_data(scale=1e3), TRAIN)
    np.testing.assert_allclose(img1, img, rtol=1e-4)


def test_l2_rows_have_unit_norm_and_zero_rows_stay_zero() -> None:
    image, text = _data()
    text[7] = 0
    img, txt, info = apply_feature_transform("l2", image, text, TRAIN)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1, rtol=1e-5)
    nz = text.sum(1) > 0
    np.testing.assert_allclose(np.linalg.norm(txt[nz], axis=1), 1, rtol=1e-5)
    assert (txt[~nz] == 0).all() and info["text"]["zero_rows"] == int((~nz).sum())


def test_none_returns_the_features_as_given() -> None:
    image, text = _data()
    img, txt, info = apply_feature_transform("none", image, text, TRAIN)
    assert img is image and txt is text and info == {"name": "none", "fit_rows": 0}


@pytest.mark.parametrize("name", sorted(FEATURE_TRANSFORMS))
def test_idempotent_shapes_dtypes_and_inputs_untouched(name: str) -> None:
    image, text = _data()
    image64 = image.astype(np.float64)  # any float input
    before = (image64.copy(), text.copy())
    img, txt, _ = apply_feature_transform(name, image64, text, TRAIN)
    np.testing.assert_array_equal(image64, before[0])
    np.testing.assert_array_equal(text, before[1])
    assert img.shape == image.shape and txt.shape == text.shape
    if name != "none":
        assert img.dtype == np.float32 and txt.dtype == np.float32 and img.flags.c_contiguous
    img2, txt2, _ = apply_feature_transform(name, img, txt, TRAIN)
    np.testing.assert_allclose(img2, img, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(txt2, txt, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(FEATURE_TRANSFORMS))
def test_sparse_binary_text_stays_finite(name: str) -> None:
    ds = load_dataset("synthetic", n=600, image_dim=64, text_dim=200)
    train = ds.splits["train"]
    text = ds.text.copy()
    text[train[:5]] = 0  # empty bags of words
    img, txt, info = apply_feature_transform(name, ds.image, text, train)
    assert np.isfinite(img).all() and np.isfinite(txt).all()
    assert np.abs(txt[train]).sum(1).max() > 0
    import json

    json.dumps(info, allow_nan=False)  # plain JSON for the record


def test_bad_arguments_are_one_line_errors() -> None:
    image, text = _data()
    with pytest.raises(ConfigError, match=r"unknown feature transform 'zcore'; available: none, zscore"):
        apply_feature_transform("zcore", image, text, TRAIN)
    with pytest.raises(DataError, match="training split is empty"):
        apply_feature_transform("zscore", image, text, np.array([], dtype=np.int64))
    with pytest.raises(DataError, match="outside"):
        apply_feature_transform("scale", image, text, np.array([0, N]))
    with pytest.raises(DataError, match="image has 200 rows but text has 10"):
        apply_feature_transform("l2", image, text[:10], TRAIN)
