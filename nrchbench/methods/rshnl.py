"""RSHNL (Pu et al., AAAI 2025): robust self-paced hashing with noisy labels — the method class.

References are to ``../shared/docs/PEERS.md`` §3, ``docs/METHODS.md`` (section "RSHNL") and
to the official code, github.com/perquisite/RSHNL @ 34de146 (``[CODE file Lx]`` = line x of
that file). The pure functions (CAL, CHL, the self-paced weights, the class-count-aware γ
rule and its derivation) are in :mod:`nrchbench.methods.rshnl_losses` and re-exported here;
:class:`RSHNL` (networks, optimiser, schedule) is built on them.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from nrchbench.methods._common import LossMeans, TwoNetEncoder, dataset_key, iter_batches, linear, optimizer_step
from nrchbench.methods.base import EpochLog, HashingMethod, Rng, TrainData
from nrchbench.methods.rshnl_losses import (
    GAMMA_RATIO,
    OFFICIAL_GAMMA,
    auto_gamma,
    cal_loss,
    chl_loss,
    class_posterior,
    empirical_floor,
    loss_floor,
    phi_q,
    positive_mass,
    resolve_gamma,
    rshnl_loss,
    self_paced_loss,
    self_paced_weights,
)
from nrchbench.params import Params
from nrchbench.registry import METHODS

log = logging.getLogger(__name__)

__all__ = [
    "GAMMA_RATIO",
    "OFFICIAL_GAMMA",
    "RSHNL",
    "RSHNLParams",
    "auto_gamma",
    "cal_loss",
    "chl_loss",
    "class_posterior",
    "empirical_floor",
    "loss_floor",
    "phi_q",
    "positive_mass",
    "resolve_gamma",
    "rshnl_loss",
    "self_paced_loss",
    "self_paced_weights",
]


# ============================================================================ networks
class _UnitHead(nn.Module):
    """Linear(d→H)–ReLU–Linear(H→H)–ReLU–Linear(H→L)–tanh–row L2-normalisation [CODE model.py].

    The hash nets' last layer has no bias and weights U(±1/√d) with d the *input* width of
    the net (``ImgNN``/``TextNN``); the centre generator's (``Embedding``) has a bias with
    PyTorch's default init and weights U(±1/√C), C = its input width. The first two layers
    have PyTorch's default init. Every draw comes from ``generator``.
    """

    def __init__(self, d_in: int, hidden: int, d_out: int, last_bias: bool, generator: torch.Generator) -> None:
        super().__init__()
        self.fc1 = linear(d_in, hidden, generator)
        self.fc2 = linear(hidden, hidden, generator)
        self.fc3 = linear(hidden, d_out, generator, bias=last_bias)
        bound = 1.0 / math.sqrt(d_in)
        with torch.no_grad():
            nn.init.uniform_(self.fc3.weight, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc2(F.relu(self.fc1(x))))
        return F.normalize(self.fc3(x).tanh(), dim=1)


# ============================================================================ method
#: Official per-dataset values [CODE main.py L28–31, argparse comments, in-order reading]
#: for the datasets of nrchbench that the release covers (only wiki; xmedia, INRIA-Websearch
#: and xmedianet are not nrchbench datasets).
_DATASET_PARAMS: dict[str, dict[str, Any]] = {"wiki": {"alpha": 0.05, "gamma": 3.0}}


class RSHNLParams(Params):
    """RSHNL hyper-parameters; defaults = the official code [CODE main.py, model.py] except γ."""

    hidden: int = Field(4096, ge=1, description="units of the hidden layers of both hash nets and of E")
    epochs: int = Field(150, ge=1, description="training epochs (--MAX_EPOCH)")
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-4, gt=0, description="Adam learning rate of the nets and of E (no decay, no schedule)")
    tp: int = Field(5, ge=0, description="turning point: self-paced weights from this 0-based epoch on")
    gamma: float | Literal["auto"] = Field(
        "auto", description="self-paced threshold γ: a number, or auto = 1.14 × the loss floor of (C, k̄, L)"
    )
    gamma_ratio: float = Field(GAMMA_RATIO, gt=1, description="ρ of gamma=auto (γ = ρ·ℓ_floor)")
    alpha: float = Field(0.1, ge=0, description="α: weight of the contrastive term CHL")
    lam: float = Field(1.0, ge=0, description="λ: weight of the self-paced CAL term (--lamda)")
    q: float = Field(0.01, gt=0, le=1, description="exponent of the robust loss φ_q (CAL and CHL)")
    tau: float = Field(1.0, gt=0, description="temperature of CHL")
    self_paced: Literal["linear", "hard", "off"] = Field(
        "linear", description="linear (code), hard (--linear False) or off (--self_paced False)"
    )

    @field_validator("gamma", mode="before")
    @classmethod
    def _auto_or_positive(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
            raise ValueError("expected 'auto' or a positive number")
        return number


@METHODS.register("rshnl")
class RSHNL(TwoNetEncoder, HashingMethod):
    """RSHNL (AAAI 2025): centre aggregation with self-paced weights, plus a robust contrastive term.

    Hyper-parameters: :class:`RSHNLParams` (official code values; γ = ``auto``, the
    class-count-aware rule, unless a number is given or the dataset has an official value:
    :meth:`dataset_params`). Presets: ``paper`` = the official values; ``fast`` = hidden 1,024
    (nets and E) and 50 epochs, the configuration of the official-code fidelity runs on
    wiki; ``tiny`` = seconds (tests).

    Per-epoch log: losses ``loss`` (λ·mean ℓ̃ + α·L_c, the minimised value with the inert
    regulariser), ``loss_cal`` (mean ℓ̃), ``loss_cal_raw`` (mean ℓ), ``loss_chl`` (L_c), each the
    mean over the epoch's batches; values ``gamma`` (the resolved γ) and
    ``zero_weight_fraction`` (rows with v = 0; 0 before ``tp``); ``weights`` (v of every
    training row, from the batch it was trained in; 1 before ``tp``) and ``sample_loss`` (ℓ
    of every row, same batches); time ``train``.

    Random streams: initial weights from ``rng.torch("init")`` (image net, text net, E, in
    the code's order), batch permutations from ``rng.torch("batches")``.
    """

    name = "rshnl"
    description = "RSHNL (AAAI 2025): self-paced centre aggregation + robust contrastive hashing, official recipe"
    Params = RSHNLParams
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "fast": {"hidden": 1024, "epochs": 50},
        "tiny": {"hidden": 64, "epochs": 10, "tp": 3, "batch_size": 32, "lr": 3e-3},
    }
    uses_labels = True
    LOSS_KEYS: ClassVar[tuple[str, ...]] = ("loss", "loss_cal", "loss_cal_raw", "loss_chl")

    @classmethod
    def dataset_params(cls, dataset: str) -> dict[str, Any]:
        """Official per-dataset α and γ where the release gives them (wiki: α 0.05, γ 3).

        Every other dataset keeps α = 0.1 (the code default) and γ = ``auto``.
        """
        return dict(_DATASET_PARAMS.get(dataset_key(dataset), {}))

    def setup(self, data: TrainData, rng: Rng) -> None:
        p = self.p
        c = data.num_classes
        self.gamma_, info = resolve_gamma(p.gamma, data.labels, self.bits, p.gamma_ratio, p.q)
        if info:
            log.info(
                "rshnl: gamma=auto -> %.4f (C=%d, k=%.3f, L=%d, floor %.4f)",
                self.gamma_,
                c,
                info["k"],
                self.bits,
                info["loss_floor"],
            )
        empty = int((data.labels.sum(1) == 0).sum())
        if empty:
            log.warning("rshnl: %d training rows have no label: constant CAL loss, weight 0 after tp", empty)
        gen = rng.torch("init")
        self.img_net = _UnitHead(data.image.shape[1], p.hidden, self.bits, False, gen).to(data.device)
        self.txt_net = _UnitHead(data.text.shape[1], p.hidden, self.bits, False, gen).to(data.device)
        self.emb = _UnitHead(c, p.hidden, self.bits, True, gen).to(data.device)
        self._eye = torch.eye(c, device=data.device)
        self._opt = torch.optim.Adam(
            [{"params": self.emb.parameters()}, {"params": [*self.img_net.parameters(), *self.txt_net.parameters()]}],
            lr=p.lr,
        )
        self._batch_gen = rng.torch("batches")

    def centres(self) -> torch.Tensor:
        """W = E(I_C): the C×L unit-norm class centres (recomputed from E, never stored)."""
        return self.emb(self._eye)

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        p = self.p
        log = EpochLog(epoch)
        image, text, labels = data.image.float(), data.text.float(), data.labels.float()
        weights = torch.ones(data.n, device=data.device)
        ell = torch.zeros(data.n, device=data.device)
        self.img_net.train()
        self.txt_net.train()
        means = LossMeans(self.LOSS_KEYS, data.device)
        with log.timer("train", data.device):
            for idx in iter_batches(data.n, p.batch_size, self._batch_gen, data.device):
                terms = rshnl_loss(
                    self.img_net(image[idx]),
                    self.txt_net(text[idx]),
                    self.centres(),
                    labels[idx],
                    epoch=epoch,
                    tp=p.tp,
                    gamma=self.gamma_,
                    alpha=p.alpha,
                    lam=p.lam,
                    q=p.q,
                    tau=p.tau,
                    self_paced=p.self_paced,
                )
                optimizer_step(terms["loss"], self._opt)
                means.add(terms)
                weights[idx] = terms["weights"].to(weights.dtype)
                ell[idx] = terms["sample_loss"].to(ell.dtype)
        log.losses.update(means.means())
        w = weights.cpu().numpy().astype(np.float64)
        log.weights, log.sample_loss = w, ell.cpu().numpy().astype(np.float64)
        log.values["gamma"] = self.gamma_
        log.values["zero_weight_fraction"] = float((w == 0).mean()) if w.size else 0.0
        return log
