"""The clean-label oracle: trained on exactly the clean pairs; only it ever sees the clean mask."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from nrchbench.errors import ConfigError
from nrchbench.methods import METHODS, EpochLog, HashingMethod, TrainData, create_method
from nrchbench.noise import apply
from nrchbench.runner import run
from nrchbench.spec import resolve_spec
from nrchbench.testing import mock_data

SMALL = {"n": 600, "image_dim": 64, "text_dim": 200}


def test_oracle_equals_the_base_trained_on_the_clean_rows() -> None:
    data = mock_data()
    y = data.train.labels.numpy().astype(np.uint8)
    nl = apply("nrch", y, 0.5, 3)
    mask = torch.from_numpy(nl.clean_mask)
    noisy = TrainData(
        data.train.image, data.train.text, torch.from_numpy(nl.labels.astype(np.float32)), data.train.device, mask
    )
    oracle = create_method("oracle", 16, "tiny", base="dcmh")
    logs: list[EpochLog] = []
    oracle.fit(noisy, seed=1, callback=logs.append)
    base = create_method("dcmh", 16, "tiny")
    idx = torch.nonzero(mask).reshape(-1)
    base.fit(TrainData(data.train.image[idx], data.train.text[idx], noisy.labels[idx], noisy.device), seed=1)
    assert torch.equal(oracle.encode("image", data.query_image), base.encode("image", data.query_image))
    assert all(np.array_equal(lg.selected, nl.clean_mask) for lg in logs)
    assert oracle.num_epochs == base.num_epochs


def test_oracle_resolves_the_base_and_refuses_unsupervised_bases() -> None:
    spec = resolve_spec("oracle", bits=16, preset="tiny", params={"base": "DCMH"}, device="cpu")
    assert spec.resolved_params["base"] == "dcmh"
    assert spec.resolved_params["base_params"] == create_method("dcmh", 16, "tiny").params
    with pytest.raises(ConfigError, match="not a supervised base"):
        resolve_spec("oracle", params={"base": "djsrh"}, device="cpu")


def test_only_declaring_methods_see_the_clean_mask(tmp_path) -> None:
    seen: dict[str, Any] = {}

    class Peeker(HashingMethod):
        """Test: records whether it was given the clean mask."""

        defaults: ClassVar[dict[str, Any]] = {"epochs": 1}
        presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "fast": {}, "tiny": {}}

        def setup(self, data, rng):
            seen["mask"] = data.clean_mask
            self.w = torch.ones(data.image.shape[1], self.bits)
            self.v = torch.ones(data.text.shape[1], self.bits)

        def train_epoch(self, epoch, data, rng):
            return EpochLog(epoch, losses={"loss": 0.0})

        def encode_image(self, x):
            return x @ self.w

        def encode_text(self, x):
            return x @ self.v

    METHODS.register("test-peeker", Peeker)
    try:
        run(resolve_spec("test-peeker", bits=16, preset="tiny", dataset_options=SMALL, noise_rate=0.5, device="cpu"))
        assert seen["mask"] is None
    finally:
        METHODS.unregister("test-peeker")
    rec = run(resolve_spec("oracle", bits=16, preset="tiny", dataset_options=SMALL, noise_rate=0.5, device="cpu"))
    h = rec.to_dict()["history"]
    assert rec.status == "ok" and h[-1]["sel_precision"] == 1.0 and h[-1]["sel_recall"] == 1.0
    assert h[-1]["selected_fraction"] == pytest.approx(0.5)
