"""The method contract (nrchbench.testing.check_method) on every registered method — a new
method or an installed plugin is covered without writing a test — and the kit itself, on
deliberately broken methods."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from nrchbench.errors import ConfigError
from nrchbench.methods import METHODS, EpochLog, HashingMethod, create_method
from nrchbench.testing import MethodContractError, check_method, mock_data

BITS = 16


@pytest.fixture(scope="module")
def data():
    return mock_data()


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", METHODS.names())
def test_contract(name, data):
    report = check_method(METHODS.get(name), bits=BITS, data=data)
    assert report["epochs"] >= 1


@pytest.mark.parametrize("name", METHODS.names())
def test_get_params_round_trips_and_bad_parameters_raise(name):
    cls = METHODS.get(name)
    m = create_method(name, BITS, "tiny")
    params = m.get_params()
    assert params["bits"] == BITS
    assert cls(**params).get_params() == params
    with pytest.raises(ConfigError):
        create_method(name, BITS, "tiny", no_such_parameter=1)
    with pytest.raises(ConfigError):
        create_method(name, BITS, "no_such_preset")
    assert cls.description


# --------------------------------------------------------------------- the kit catches breakage
class _Good(HashingMethod):
    name = "contract-good"
    description = "a linear projection, seeded from the Rng"
    defaults: ClassVar = {"epochs": 2}
    presets: ClassVar = {"paper": {}, "fast": {}, "tiny": {}}
    uses_labels = False

    def setup(self, data, rng):
        g = rng.torch("init")
        self.w1 = torch.randn(data.image.shape[1], self.bits, generator=g)
        self.w2 = torch.randn(data.text.shape[1], self.bits, generator=g)

    def train_epoch(self, epoch, data, rng):
        return EpochLog(epoch, losses={"loss": 0.0})

    def encode_image(self, x):
        return x @ self.w1

    def encode_text(self, x):
        return x @ self.w2


class _WrongShape(_Good):
    def encode_text(self, x):
        return (x @ self.w2)[:, :-1]


class _NaN(_Good):
    def encode_image(self, x):
        return torch.full((x.shape[0], self.bits), float("nan"))


class _GlobalRng(_Good):
    def setup(self, data, rng):
        self.w1 = torch.randn(data.image.shape[1], self.bits)  # global RNG
        self.w2 = torch.randn(data.text.shape[1], self.bits)


class _ReadsLabels(_Good):
    def setup(self, data, rng):
        super().setup(data, rng)
        self.w1 = self.w1 + data.labels.sum()


class _NoSelection(_Good):
    uses_labels = True
    selects_samples = True


def test_kit_accepts_a_correct_method(data):
    check_method(_Good, data=data)


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_WrongShape, "shape"),
        (_NaN, "NaN"),
        (_GlobalRng, "global random state"),
        (_ReadsLabels, "change with the labels"),
        (_NoSelection, "selected"),
    ],
)
def test_kit_rejects_broken_methods(cls, message, data):
    with pytest.raises(MethodContractError, match=message):
        check_method(cls, data=data)


def test_missing_preset_is_refused_when_the_class_is_defined():
    with pytest.raises(TypeError, match="preset"):

        class _NoTiny(_Good):
            presets: ClassVar = {"paper": {}, "fast": {}}


def test_kit_rejects_presets_removed_later(data):
    class _Late(_Good):
        pass

    _Late.presets = {"paper": {}}
    with pytest.raises(MethodContractError, match="missing preset"):
        check_method(_Late, data=data)


def test_unsupervised_outputs_bit_identical_across_label_matrices(data):
    """The kit's label check on every registered noise-invariant method, stated directly."""
    for name in METHODS.names():
        cls = METHODS.get(name)
        if cls.uses_labels:
            continue
        outs = []
        for labels in (torch.zeros_like(data.train.labels), data.train.labels):
            m = create_method(name, BITS, "tiny")
            m.fit(type(data.train)(data.train.image, data.train.text, labels, data.train.device), seed=0)
            outs.append(m.encode("image", data.query_image))
        assert torch.equal(outs[0], outs[1]), name
