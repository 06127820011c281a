"""DJSRH: Deep Joint-Semantics Reconstructing Hashing (Su, Zhong, Zhang; ICCV 2019), feature-based.

Unsupervised (METHODS.md §7): labels are never read, so a run is noise-invariant. The image
net is ``fc_encode`` = Linear(d_img→L) on the given features (``image_head="linear"``) or
Linear(d_img→4096)–ReLU–Linear(4096→L) (``"mlp"``); the text net is
Linear(d_t→4096)–ReLU–Linear(4096→L); codes during training are tanh(α·H) with
α = √(epoch+1).

Per batch of m rows (drop_last), from the batch's own *input* features:

    F̂ = rownorm(F);  S_I = F̂_I F̂_Iᵀ,  S_T = F̂_T F̂_Tᵀ  (cosines, each mapped, see below)
    S̃ = β S_I + (1−β) S_T;   S = (1−η) S̃ + η S̃ S̃ᵀ / m
    B̂ = rownorm(tanh(α H))
    L = mse(μS, B̂_I B̂_Tᵀ) + λ1 mse(μS, B̂_I B̂_Iᵀ) + λ2 mse(μS, B̂_T B̂_Tᵀ)

(mse = mean over the m² entries, as the official code's ``F.mse_loss``). One SGD step
(momentum 0.9, weight decay 5e-4) of each net's optimiser per batch.

Similarity map (``similarity_map``), decided per modality:

* ``affine``: 2S−1, the official code's map of non-negative-feature cosines [0,1] → [−1,1];
* ``clamp``: the raw cosine, clamped to [−1,1] (only guards rounding): the right choice
  for signed features such as COCO's Doc2Vec, where 2S−1 would reach −3;
* ``auto`` (default): ``affine`` for a modality whose training features are all ≥ 0,
  ``clamp`` otherwise. The decision is logged and kept in ``similarity_maps_``.

Per-dataset settings (official ``settings.py``) come from :meth:`DJSRH.dataset_params`;
the ``defaults`` are the NUS-WIDE values, which also serve IAPR, COCO and any other dataset.

Presets: ``paper`` (official values); ``fast``: text hidden 1024 instead of 4096, all else
official (the text MLP dominates the CPU cost on bag-of-words text; the epochs stay, so the
per-dataset epochs of :meth:`DJSRH.dataset_params` still apply). Check (64 bits, seed 0,
H200), mAP I2T/T2I: ``synthetic`` paper 0.467/0.468, fast 0.469/0.472 (40 epochs: 0.454/
0.452; chance 0.341); ``wiki`` (200 epochs) paper 0.221/0.199, fast 0.192/0.196 (chance
0.108); the loss changes < 1 % over the last 10 % of epochs in each. ``tiny``: tests.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from nrchbench.errors import ConfigError, RegistryError
from nrchbench.methods._common import ImageHead, image_head, mlp, optimizer_step
from nrchbench.methods.base import EpochLog, HashingMethod, Rng, TrainData
from nrchbench.params import Params
from nrchbench.registry import DATASETS, METHODS

log = logging.getLogger(__name__)

SIMILARITY_MAPS = ("auto", "affine", "clamp")

# Official settings.py values; datasets without one get the NUS-WIDE values (METHODS.md §7.3).
_NUSWIDE = {"beta": 0.6, "lambda1": 0.1, "lambda2": 0.1, "epochs": 80, "lr_img": 1e-3, "lr_txt": 1e-2}
_DATASET_PARAMS: dict[str, dict[str, Any]] = {
    "mirflickr": {"beta": 0.9, "lambda1": 0.1, "lambda2": 0.1, "epochs": 80, "lr_img": 1e-3, "lr_txt": 1e-2},
    "nuswide": dict(_NUSWIDE),
    "wiki": {"beta": 0.3, "lambda1": 0.3, "lambda2": 0.3, "epochs": 200, "lr_img": 1e-2, "lr_txt": 1e-2},
}


# --------------------------------------------------------------------------- pure terms
def cosine_similarity_map(features: torch.Tensor, mapping: str) -> torch.Tensor:
    """Mapped cosine-similarity matrix of the rows of ``features`` (m×m).

    Args:
        features: m×d input features.
        mapping: ``affine`` (2·cos−1) or ``clamp`` (cos clamped to [−1,1]).
    """
    fn = F.normalize(features, dim=1)
    s = fn @ fn.T
    if mapping == "affine":
        return 2.0 * s - 1.0
    if mapping == "clamp":
        return s.clamp(-1.0, 1.0)
    raise ConfigError(f"djsrh parameter 'similarity_map': expected affine or clamp here, got {mapping!r}")


def djsrh_joint_similarity(
    feat_img: torch.Tensor,
    feat_txt: torch.Tensor,
    beta: float,
    eta: float,
    map_img: str = "affine",
    map_txt: str = "affine",
) -> torch.Tensor:
    """The joint-semantics matrix S (m×m, before the μ scaling).

    S̃ = β S_I + (1−β) S_T and S = (1−η) S̃ + η S̃ S̃ᵀ / m.
    """
    s_tilde = beta * cosine_similarity_map(feat_img, map_img) + (1.0 - beta) * cosine_similarity_map(feat_txt, map_txt)
    m = s_tilde.shape[0]
    return (1.0 - eta) * s_tilde + eta * (s_tilde @ s_tilde.T) / m


def djsrh_loss(
    code_img: torch.Tensor,
    code_txt: torch.Tensor,
    target: torch.Tensor,
    lambda1: float,
    lambda2: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reconstruction loss of the scaled joint-semantics matrix ``target`` = μS.

    Args:
        code_img: m×L relaxed image codes tanh(α H_I).
        code_txt: m×L relaxed text codes tanh(α H_T).
        target: m×m μ·S.
        lambda1: weight of the image–image term.
        lambda2: weight of the text–text term.

    Returns:
        (total, cross, img, txt) where each term is the mean squared error over the m²
        entries and total = cross + λ1·img + λ2·txt.
    """
    bi = F.normalize(code_img, dim=1)
    bt = F.normalize(code_txt, dim=1)
    cross = F.mse_loss(bi @ bt.T, target)
    img = F.mse_loss(bi @ bi.T, target)
    txt = F.mse_loss(bt @ bt.T, target)
    return cross + lambda1 * img + lambda2 * txt, cross, img, txt


def resolve_similarity_map(choice: str, features: torch.Tensor) -> str:
    """``auto`` → ``affine`` if every feature value is ≥ 0, else ``clamp``; others unchanged."""
    if choice not in SIMILARITY_MAPS:
        raise ConfigError(
            f"djsrh parameter 'similarity_map': expected one of {', '.join(SIMILARITY_MAPS)}, got {choice!r}"
        )
    if choice != "auto":
        return choice
    return "affine" if bool((features >= 0).all()) else "clamp"


# --------------------------------------------------------------------------- method
class DJSRHParams(Params):
    """DJSRH hyper-parameters; defaults = the official NUS-WIDE values (METHODS.md §7.3)."""

    image_head: ImageHead = Field("linear", description="linear (fc_encode on the features) or mlp")
    image_hidden: int = Field(4096, ge=1)
    text_hidden: int = Field(4096, ge=1)
    epochs: int = Field(80, ge=1)
    batch_size: int = Field(32, ge=1)
    beta: float = Field(0.6, ge=0, le=1, description="weight of the image similarity in S̃")
    eta: float = Field(0.4, ge=0, le=1, description="weight of the second-order term S̃S̃ᵀ/m")
    mu: float = Field(1.5, description="scale μ of the target μS")
    lambda1: float = Field(0.1, ge=0, description="weight of the image–image term")
    lambda2: float = Field(0.1, ge=0, description="weight of the text–text term")
    lr_img: float = Field(1e-3, gt=0)
    lr_txt: float = Field(1e-2, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(5e-4, ge=0)
    similarity_map: Literal["auto", "affine", "clamp"] = Field("auto", description="see the module docstring")
    alpha_schedule: bool = Field(True, description="α = √(epoch+1) (official); False: α = 1 (README ablation)")


@METHODS.register("djsrh")
class DJSRH(HashingMethod):
    """DJSRH (ICCV 2019), unsupervised: reconstruct the joint-semantics matrix of the inputs.

    Hyper-parameters: :class:`DJSRHParams` (defaults = NUS-WIDE official values; per-dataset
    values from :meth:`dataset_params`). Per-epoch log: losses ``loss`` (weighted),
    ``loss_cross``, ``loss_img``, ``loss_txt`` (unweighted means over the epoch's batches),
    value ``alpha``, time ``train``.

    Random streams: as the official code, torch seeded with the run's seed gives the default
    init and a second generator seeded with the seed the batch permutations; both are explicit
    generators here (:meth:`Rng.raw_torch`).
    """

    name = "djsrh"
    description = "DJSRH (ICCV 2019), unsupervised, feature-based: joint-semantics reconstruction"
    Params = DJSRHParams
    presets = {
        "paper": {},
        "fast": {"text_hidden": 1024},
        "tiny": {"epochs": 5, "text_hidden": 64, "image_hidden": 64, "batch_size": 16},
    }
    uses_labels = False

    @classmethod
    def dataset_params(cls, dataset: str) -> dict[str, Any]:
        """Per-dataset values from the official ``settings.py``.

        MIRFlickr, NUS-WIDE and WIKI have official settings; every other dataset (IAPR,
        COCO, synthetic, generic) gets the NUS-WIDE values (METHODS.md §7.3).
        """
        try:
            key = DATASETS.canonical(dataset)
        except RegistryError:
            key = str(dataset).lower()
        return dict(_DATASET_PARAMS.get(key, _NUSWIDE))

    def setup(self, data: TrainData, rng: Rng) -> None:
        p = self.p
        self._image, self._text = data.image.float(), data.text.float()
        self.similarity_maps_ = {
            "image": resolve_similarity_map(p.similarity_map, self._image),
            "text": resolve_similarity_map(p.similarity_map, self._text),
        }
        log.info("djsrh similarity maps: %s", self.similarity_maps_)
        init = rng.raw_torch()
        self.img_net = image_head(p.image_head, self._image.shape[1], p.image_hidden, self.bits, init).to(data.device)
        self.txt_net = mlp(self._text.shape[1], p.text_hidden, self.bits, 2, init).to(data.device)
        self._gen = rng.raw_torch()
        common = {"momentum": p.momentum, "weight_decay": p.weight_decay}
        self._opt_img = torch.optim.SGD(self.img_net.parameters(), lr=p.lr_img, **common)
        self._opt_txt = torch.optim.SGD(self.txt_net.parameters(), lr=p.lr_txt, **common)
        self.alpha_ = 1.0

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        """Joint SGD on the reconstruction loss over the epoch's batches; never reads labels."""
        p = self.p
        log = EpochLog(epoch)
        n = data.n
        m = min(p.batch_size, n)
        alpha = math.sqrt(epoch + 1.0) if p.alpha_schedule else 1.0
        self.img_net.train()
        self.txt_net.train()
        totals = torch.zeros(3, device=data.device)
        steps = n // m  # drop_last
        with log.timer("train", data.device):
            perm = torch.randperm(n, generator=self._gen).to(data.device)
            for k in range(steps):
                idx = perm[k * m : (k + 1) * m]
                fi, ft = self._image[idx], self._text[idx]
                with torch.no_grad():
                    target = p.mu * djsrh_joint_similarity(
                        fi, ft, p.beta, p.eta, self.similarity_maps_["image"], self.similarity_maps_["text"]
                    )
                code_i = torch.tanh(alpha * self.img_net(fi))
                code_t = torch.tanh(alpha * self.txt_net(ft))
                loss, cross, li, lt = djsrh_loss(code_i, code_t, target, p.lambda1, p.lambda2)
                optimizer_step(loss, self._opt_img, self._opt_txt)
                totals += torch.stack([cross.detach(), li.detach(), lt.detach()])
        cross, li, lt = (totals / max(steps, 1)).tolist()
        log.losses.update(loss=cross + p.lambda1 * li + p.lambda2 * lt, loss_cross=cross, loss_img=li, loss_txt=lt)
        log.values["alpha"] = alpha
        self.alpha_ = alpha
        return log

    # ------------------------------------------------------------------ encode
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """H_I (sign(H) = sign(tanh(αH)))."""
        self.img_net.eval()
        return self.img_net(x.float())

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        """H_T (sign(H) = sign(tanh(αH)))."""
        self.txt_net.eval()
        return self.txt_net(x.float())
