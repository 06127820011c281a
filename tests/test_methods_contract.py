"""Contract tests run for every registered method (built-in or plugin): a new method is
covered without writing a test. Each trains with its ``tiny`` preset on a tiny synthetic
set in seconds on the CPU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nrchbench.errors import ConfigError, RegistryError
from nrchbench.methods import METHODS, PRESETS, TrainView, create_method

torch.set_num_threads(1)

BITS = 16
SPECIAL_KEYS = {"selected", "sample_loss", "gmm"}


def _method_class(name: str):
    try:
        return METHODS.get(name)
    except RegistryError as exc:
        # A built-in declared in pyproject.toml whose module has not been written yet.
        if "No module named 'nrchbench.methods." in str(exc):
            pytest.skip(f"method {name!r} is declared but its module does not exist yet")
        raise


@pytest.fixture(scope="module")
def tiny_data():
    """(train view, query image, query text, train labels): synthetic, 250 train rows."""
    from nrchbench.datasets import load_dataset

    ds = load_dataset("synthetic", n=600, seed=0)
    X, T, Y = ds.part("train")
    qX, qT, _ = ds.part("query")
    view = TrainView(
        torch.from_numpy(np.ascontiguousarray(X, np.float32)),
        torch.from_numpy(np.ascontiguousarray(T, np.float32)),
        torch.from_numpy(Y.astype(np.float32)),
        torch.device("cpu"),
    )
    return view, torch.from_numpy(qX.astype(np.float32)), torch.from_numpy(qT.astype(np.float32)), Y


def _view_for(cls, view: TrainView) -> TrainView:
    """What the runner passes: all-zero labels to methods that do not use labels."""
    if cls.uses_labels:
        return view
    return TrainView(view.image, view.text, torch.zeros_like(view.labels), view.device)


@pytest.mark.parametrize("name", METHODS.names())
def test_declares_presets_and_parameters(name):
    cls = _method_class(name)
    assert set(PRESETS) <= set(cls.presets), f"{name} must define presets {PRESETS}"
    assert cls.defaults, f"{name} declares no hyper-parameters"
    for preset, overrides in cls.presets.items():
        assert set(overrides) <= set(cls.defaults), f"{name} preset {preset!r} sets undeclared parameters"
        cls.resolve_params(preset)
    assert isinstance(cls.uses_labels, bool) and isinstance(cls.selects_samples, bool)
    assert cls.description


@pytest.mark.parametrize("name", METHODS.names())
def test_get_params_round_trips(name):
    cls = _method_class(name)
    m = create_method(name, BITS, "tiny")
    params = m.get_params()
    assert params["bits"] == BITS
    assert cls(**params).get_params() == params


@pytest.mark.parametrize("name", METHODS.names())
def test_unknown_parameter_and_preset_raise(name):
    _method_class(name)
    with pytest.raises(ConfigError):
        create_method(name, BITS, "tiny", no_such_parameter=1)
    with pytest.raises(ConfigError):
        create_method(name, BITS, "no_such_preset")


@pytest.mark.parametrize("name", METHODS.names())
def test_trains_end_to_end(name, tiny_data):
    cls = _method_class(name)
    view, qX, qT, _ = tiny_data
    m = create_method(name, BITS, "tiny")
    logs: list[dict] = []
    m.fit(_view_for(cls, view), seed=0, callback=lambda epoch, lg: logs.append(lg))
    assert len(logs) == m.num_epochs
    for lg in logs:
        for key, value in lg.items():
            if key in SPECIAL_KEYS:
                continue
            assert isinstance(value, (int, float)) and math.isfinite(value), f"{name} log {key}={value!r}"
        if cls.selects_samples:
            sel = np.asarray(lg["selected"])
            assert sel.dtype == bool and sel.shape == (view.n,)
    for modality, x in (("image", qX), ("text", qT)):
        out = m.encode(modality, x)
        assert out.shape == (x.shape[0], BITS)
        assert torch.isfinite(out).all()
        codes = torch.where(out >= 0, 1, -1)
        assert codes.abs().eq(1).all()


@pytest.mark.parametrize("name", METHODS.names())
def test_unsupervised_methods_ignore_labels(name, tiny_data):
    cls = _method_class(name)
    if cls.uses_labels:
        pytest.skip(f"{name} uses labels")
    view, qX, _, _ = tiny_data
    outs = []
    for labels in (torch.zeros_like(view.labels), view.labels):
        m = create_method(name, BITS, "tiny")
        m.fit(TrainView(view.image, view.text, labels, view.device), seed=0)
        outs.append(m.encode("image", qX))
    assert torch.equal(outs[0], outs[1])
