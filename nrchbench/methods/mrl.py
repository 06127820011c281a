"""MRL (Hu et al., CVPR 2021) made a hashing method: the hashed reading ``mrl_hash`` (PEERS §5.2).

References are to ``../shared/docs/PEERS.md`` §5, ``docs/METHODS.md`` (section "MRL") and to
the official code, github.com/penghu-cs/MRL @ e0f5c8f (``[CODE file Lx]`` = line x of that
file), and to the paper's equations ([PAPER eq. x]). The pure functions, in
:mod:`nrchbench.methods.mrl_losses` (re-exported here), hold no state (the one random function
takes an explicit generator); the method class :class:`MRL` is built on them.

**The hashed reading is an adaptation** (MRL is a real-valued retrieval method; no hashing
paper states how it re-ran MRL): the last layer has L units, tanh comes before the row
L2-normalisation, codes are sign(output); the losses are MRL's, with no quantisation term
(``tanh=False`` gives the plain MRL trunk with L outputs and sign at test).

Notation: z¹, z² ∈ R^{n×L} the unit-norm image/text outputs (hashed reading: L units, tanh,
row L2-normalisation; sign at test, PEERS §5.2); C ∈ R^{L×K} the learnable class centres
with unit columns; ỹ ∈ {0,1}^{n×K} the noisy labels (one label vector per pair).

**Multi-label reading** (PEERS §5.2). The code's RC loss is
``((1 − onehot(y)) * pred).sum(1) / pred.sum(1)`` → log [CODE src/utils.py L144–148], i.e.
log(1 − p_y). Written with the multi-hot label in place of the one-hot it is
log(1 − p_Y) with p_Y = Σ_c ỹ_c p(c|z), the posterior mass on the noisy label set; it
reduces to the code for single-label data. A row with every class positive would make
p_Y = 1 and the log −∞, hence the guard ``eps`` (PEERS §5.2: log(1 − p_Y + 1e-7)); on
single-label data 1 − p_y ≥ (K − 1)/(K − 1 + e^{2/τ}) and the guard changes the loss by
less than 1e-7/(1 − p_y) (rounding level); ``eps=0`` is the code bit for bit.

**Where paper and code differ** (each a named switch, the default is the code):

* MC self-similarity: the code zeroes exp(a_kᵀa_k/τ) before forming P_k
  [CODE main_noisy.py L136]; the paper's eq. 6 keeps it in the numerator and the
  denominator (``self_similarity="keep"``).
* MC normalisation: the code returns ``loss1 + loss2``, two numerically identical terms
  [CODE main_noisy.py L139–144]; this factor 2 is also the paper's eq. 7 (a sum over the m = 2
  modalities of means over N), so ``doubled=True`` is code and paper alike.
* LR schedule: the code steps ``CosineAnnealingLR`` with the epoch index after each epoch
  and once before the loop, so epoch e trains at η(max(e − 1, 0)) (epochs 0 and 1 at the full
  rate; ``lr_schedule="cosine-lagged"``, the code); ``cosine`` is the unlagged η(e),
  ``constant`` no schedule.
* Centres: the code takes the first K columns of an L×L ``orthogonal_`` matrix
  [CODE main_noisy.py L83–84], impossible for K > L (COCO below 80 bits, IAPR at any L).
  :func:`init_centres` draws ``orthogonal_`` on L×K directly and normalises the columns
  (``mode="direct"``, PEERS §5.2): for K ≤ L this has the same (Haar) distribution as the
  code's slice (``mode="slice"``), and the code is unseeded, so no draw is reproducible anyway.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import nn

from nrchbench.errors import ConfigError
from nrchbench.methods._common import (
    LossMeans,
    TwoNetEncoder,
    dataset_key,
    hash_heads,
    iter_batches,
    optimizer_step,
    set_lr,
)
from nrchbench.methods.base import EpochLog, HashingMethod, Rng, TrainData
from nrchbench.methods.mrl_losses import (
    CentreInit,
    LRSchedule,
    SelfSimilarity,
    init_centres,
    learning_rate,
    mc_loss,
    mrl_loss,
    normalise_centres,
    rc_loss,
)
from nrchbench.params import Params
from nrchbench.registry import METHODS

__all__ = [
    "MRL",
    "MRLParams",
    "init_centres",
    "learning_rate",
    "mc_loss",
    "mrl_loss",
    "normalise_centres",
    "rc_loss",
]

# ============================================================================ method
#: The README's wiki command (the only published run configuration): 30 epochs, batch 100,
#: β 0.7, ``--loss MCE``. The paper's other datasets are not nrchbench datasets.
_DATASET_PARAMS: dict[str, dict[str, Any]] = {"wiki": {"epochs": 30, "batch_size": 100, "beta": 0.7}}


class MRLParams(Params):
    """MRL (hashed) hyper-parameters; defaults = the official code and README (PEERS §5)."""

    hidden: int = Field(4096, ge=1, description="units of the two hidden layers of both nets")
    epochs: int = Field(100, ge=1, description="training epochs (argparse and paper: 100)")
    batch_size: int = Field(100, ge=1, description="--train_batch_size")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate (nets and centres)")
    adam_beta1: float = Field(0.5, ge=0, lt=1, description="Adam β1 (the code: 0.5)")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="Adam β2")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay (--wd)")
    lr_schedule: LRSchedule = Field("cosine-lagged", description="cosine-lagged (code), cosine or constant")
    beta: float = Field(0.7, ge=0, le=1, description="β: weight of RC against MC (README 0.7)")
    tau: float = Field(1.0, gt=0, description="temperature τ1 = τ2 of RC and MC (one --tau in the code)")
    eps: float = Field(1e-7, ge=0, description="guard in log(1 − p_Y + eps) (PEERS §5.2; 0 = the code)")
    self_similarity: SelfSimilarity = Field("zero", description="MC: zero (code) or keep (paper eq. 6)")
    centre_init: CentreInit = Field("direct", description="direct (any K, PEERS §5.2) or slice (code, K ≤ L)")
    tanh: bool = Field(True, description="tanh before the L2-normalisation (the hashed reading)")


@METHODS.register("mrl")
class MRL(TwoNetEncoder, HashingMethod):
    """MRL (CVPR 2021) in the hashed reading: robust clustering to learnable centres + multimodal contrast.

    Hyper-parameters: :class:`MRLParams` (official code/README values; per-dataset values
    from :meth:`dataset_params`). Presets: ``paper`` = the official values; ``fast`` = hidden
    1,024 and 30 epochs, the configuration of the official-code fidelity runs on wiki;
    ``tiny`` = seconds (tests).

    Per-epoch log: losses ``loss`` (β·L_r + (1 − β)·L_c), ``loss_rc`` (L_r, the sum of the two
    modalities' RC means), ``loss_mc`` (L_c), each the mean over the epoch's batches; value
    ``lr``; ``sample_loss`` (per-row RC summed over the modalities, from the batch the row
    was trained in); time ``train``.

    Random streams: initial weights (image net, text net, then the centres) from
    ``rng.torch("init")``, batch permutations from ``rng.torch("batches")`` (the code sets
    no seed at all).
    """

    name = "mrl"
    description = "MRL (CVPR 2021), hashed reading: robust clustering (RC) + multimodal contrastive (MC), tanh+sign"
    Params = MRLParams
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "fast": {"hidden": 1024, "epochs": 30},
        "tiny": {"hidden": 64, "epochs": 10, "batch_size": 32, "lr": 3e-3},
    }
    uses_labels = True
    LOSS_KEYS: ClassVar[tuple[str, ...]] = ("loss", "loss_rc", "loss_mc")

    @classmethod
    def dataset_params(cls, dataset: str) -> dict[str, Any]:
        """The README's wiki configuration (30 epochs, batch 100, β 0.7); the defaults elsewhere."""
        return dict(_DATASET_PARAMS.get(dataset_key(dataset), {}))

    def setup(self, data: TrainData, rng: Rng) -> None:
        p = self.p
        k = data.num_classes
        if p.centre_init == "slice" and k > self.bits:
            raise ConfigError(
                f"mrl parameter 'centre_init': 'slice' (the official code) needs at most {self.bits} classes "
                f"at {self.bits} bits, the data has {k}; use centre_init=direct"
            )
        gen = rng.torch("init")
        # Linear(d→H)–ReLU–Linear(H→H)–ReLU–Linear(H→L) (PyTorch default init, biases
        # everywhere) [CODE nets/ImageNet.py, nets/TextNet.py], then tanh (the hashed
        # reading) and row L2-normalisation
        img, txt = hash_heads(data.image.shape[1], data.text.shape[1], p.hidden, self.bits, 3, 3, gen, tanh=p.tanh)
        self.img_net, self.txt_net = img.to(data.device), txt.to(data.device)
        self.C = nn.Parameter(init_centres(k, self.bits, gen, p.centre_init).to(data.device))
        self._opt = torch.optim.Adam(
            [self.C, *self.img_net.parameters(), *self.txt_net.parameters()],
            lr=p.lr,
            betas=(p.adam_beta1, p.adam_beta2),
            weight_decay=p.weight_decay,
        )
        self._batch_gen = rng.torch("batches")

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        p = self.p
        log = EpochLog(epoch)
        lr = learning_rate(epoch, p.lr, p.epochs, p.lr_schedule)
        set_lr(self._opt, lr)
        image, text, labels = data.image.float(), data.text.float(), data.labels.float()
        rc = torch.zeros(data.n, device=data.device)
        self.img_net.train()
        self.txt_net.train()
        means = LossMeans(self.LOSS_KEYS, data.device)
        with log.timer("train", data.device):
            for idx in iter_batches(data.n, p.batch_size, self._batch_gen, data.device):
                with torch.no_grad():  # C.data = C / C.norm(dim=0) before every step [CODE L153–154]
                    self.C.copy_(normalise_centres(self.C))
                terms = mrl_loss(
                    self.img_net(image[idx]),
                    self.txt_net(text[idx]),
                    self.C,
                    labels[idx],
                    beta=p.beta,
                    tau1=p.tau,
                    tau2=p.tau,
                    eps=p.eps,
                    self_similarity=p.self_similarity,
                )
                optimizer_step(terms["loss"], self._opt)
                means.add(terms)
                rc[idx] = terms["sample_loss"].to(rc.dtype)
        log.losses.update(means.means())
        log.values["lr"] = lr
        log.sample_loss = rc.cpu().numpy().astype(np.float64)
        return log
