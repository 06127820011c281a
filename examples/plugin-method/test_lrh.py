"""The plugin's own tests: nrchbench's contract kit, plus what is specific to LRH."""

import torch
from nrchbench_lrh import LabelRegressionHashing

from nrchbench.testing import check_method, mock_data


def test_contract():
    check_method(LabelRegressionHashing)


def test_keeps_the_configured_fraction():
    data = mock_data()
    method = LabelRegressionHashing(bits=16, epochs=3, keep=0.4)
    logs = []
    method.fit(data.train, seed=0, callback=logs.append)
    assert logs[0].selected.all()  # warm-up: every sample
    assert abs(logs[-1].selected.mean() - 0.4) < 0.01
    assert torch.isfinite(method.encode("image", data.query_image)).all()
