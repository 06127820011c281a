"""UCCH (Hu et al., TPAMI 2023): unsupervised contrastive cross-modal hashing.

References are to ``../shared/docs/PEERS.md`` §4, the UCCH section of ``docs/METHODS.md``, the paper
(``paper/UCCH.pdf`` in the repository) and the official code, penghu-cs/UCCH @ 0c20e62
(``NCE/NCEAverage.py``, ``NCE/NCECriterion.py``, ``src/utils.py`` ``ContrastiveLoss``,
``UCCH.py``, ``utils/config.py``). The pure functions, in :mod:`nrchbench.methods.ucch_losses`
(re-exported here), equal their formulas; :class:`UCCH` trains with them as the official code does. Labels are never read (``uses_labels = False``).

Notation: h = f₁(x), g = f₂(t) are the unit-norm hash outputs (tanh, then row L2) of a batch
of n pairs with training-set indices ``idx``; V ∈ R^{N×L} is the memory bank (one row per
training pair) and its keys are sign(V); T the temperature, δ the momentum, L the code length.

Model: the NRCH heads (``--num_hiden_layers 3 2``) and the memory bank. Per batch: keys read
from V (warm-up: in-batch keys), V[idx] updated (no grad), L = α·L_c + (1 − α)·L_r, one Adam
step over both nets after clipping their total gradient norm. Model selection: none (the last
epoch's nets encode; the official code keeps the epoch with the best label-based
self-retrieval on 2,000 training rows, which nrchbench does not reproduce).

Switches (default = the official code):

* ``memory_update`` in :func:`updated_memory`: ``code`` (v_i ← normalise(δ·v_i + (1−δ)·
  normalise((h_i+g_i)/2))) | ``paper`` (eq. 5: v_i ← δ·v_i + (1−δ)·(h_i+g_i)/2, no
  normalisation);
* ``memory_init`` (``init`` in :func:`init_memory`): ``code`` (normalise(sign(2σz − σ)) =
  normalise(sign(z − ½)), z ~ N(0, 1): about 69 % of the entries are −1) | ``symmetric``
  (normalise(sign(z)), the unbiased reading PEERS.md §4.1 gives);
* ``drop_last``: True (code: the last short batch of every epoch is dropped) | False.

Hyper-parameter defaults are the README feature command's (α 0.7, m 0.2, s 0.1, 20 epochs,
batch 256, lr 1e-4) and the paper's fixed values (T 0.9, K 4096, δ 0.4); the argparse
defaults differ (α 0.9, s 1.0, 100 epochs). The paper's ranking loss (eqs. 8, 14) has the
shift ξ > 0 as well (its value is not given; PEERS.md §4.2 reads it as absent); its margin
condition M_ii − M_ij ≤ m is the code's S_ij ≥ S_ii − m.

Numerical note: the cross-entropies use ``log_softmax`` where the code takes
``softmax(·).log()`` and the log-sum-exp uses ``torch.logsumexp`` where the code takes
``exp().sum().log()``; equal up to rounding.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

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
from nrchbench.methods.ucch_losses import (
    MEMORY_INITS,
    MEMORY_UPDATES,
    contrastive_hash_loss,
    draw_negatives,
    init_memory,
    key_logits,
    learning_rate,
    ranking_loss,
    ucch_batch_loss,
    updated_memory,
    warmup_contrastive_loss,
)
from nrchbench.params import Params
from nrchbench.registry import METHODS

__all__ = [
    "MEMORY_INITS",
    "MEMORY_UPDATES",
    "UCCH",
    "UCCHParams",
    "contrastive_hash_loss",
    "draw_negatives",
    "init_memory",
    "key_logits",
    "learning_rate",
    "ranking_loss",
    "ucch_batch_loss",
    "updated_memory",
    "warmup_contrastive_loss",
]


# ============================================================================ method
class UCCHParams(Params):
    """UCCH hyper-parameters; defaults = the README feature command and the paper (PEERS.md §4.3)."""

    hidden: int = Field(8192, ge=1, description="units of every hidden layer")
    image_layers: int = Field(3, ge=1, description="Linear layers of the image net (--num_hiden_layers)")
    text_layers: int = Field(2, ge=1, description="Linear layers of the text net")
    alpha: float = Field(0.7, ge=0, le=1, description="α (the paper's β): weight of L_c; L_r gets 1 − α")
    margin: float = Field(0.2, description="m of the ranking loss")
    shift: float = Field(0.1, description="s of the ranking loss (README 0.1; argparse default 1.0)")
    temperature: float = Field(0.9, gt=0, description="T of the contrastive hashing loss")
    num_negatives: int = Field(4096, ge=1, description="K: memory negatives per row")
    momentum: float = Field(0.4, ge=0, lt=1, description="δ of the memory update (0: in-batch keys throughout)")
    warmup_epochs: int = Field(1, ge=0, description="epochs with in-batch keys and δ = 0 (--warmup_epoch)")
    memory_update: Literal["code", "paper"] = Field("code", description="code (normalised) or paper (eq. 5)")
    memory_init: Literal["code", "symmetric"] = Field("code", description="code: sign(z − ½); symmetric: sign(z)")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate (one optimiser over both nets)")
    weight_decay: float = Field(1e-6, ge=0, description="Adam weight decay")
    clip_norm: float = Field(1.0, gt=0, description="max total gradient norm over both nets")
    lr_milestones: list[int] = Field([30, 60, 90, 120], description="MultiStepLR milestones (see learning_rate)")
    lr_gamma: float = Field(0.1, gt=0, description="MultiStepLR factor")
    batch_size: int = Field(256, ge=1)
    drop_last: bool = Field(True, description="drop the last short batch of every epoch (code)")
    epochs: int = Field(20, ge=1)


@METHODS.register("ucch")
class UCCH(TwoNetEncoder, HashingMethod):
    """UCCH: unsupervised contrastive hashing with a sign-key memory bank and a ranking loss.

    Parameters: :class:`UCCHParams`. No per-dataset values were published except the README's
    MIRFlickr command (α 0.7, s 0.1, :meth:`dataset_params`), which are also the defaults
    everywhere (PEERS.md §4.3 [BENCH]).

    Presets: ``paper`` = the defaults; ``fast`` = hidden 1024 (instead of 8192), all else
    official, 20 epochs included — the configuration of the fidelity check against the
    official code on wiki (the UCCH section of docs/METHODS.md); ``tiny`` = hidden 64, 8 epochs, batch 64,
    K 256, lr 1e-3 (tests).

    Never reads labels (``uses_labels = False``): the runner trains it once per (dataset,
    bits, seed). Per-epoch log: losses ``loss``, ``loss_c``, ``loss_r`` (means over the
    epoch's batches); values ``lr`` and ``memory_flips`` (fraction of memory-bank entries
    whose sign — i.e. whose key bit — changed during the epoch); time ``train``.

    Random streams: ``init`` (nets), ``memory`` (bank init), ``batches`` (permutations),
    ``negatives`` (K indices per row, drawn on the CPU so every device sees the same ones).
    """

    name = "ucch"
    description = "UCCH (TPAMI 2023), unsupervised: sign-key memory-bank contrastive hashing + ranking loss"
    Params = UCCHParams
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "fast": {"hidden": 1024},
        "tiny": {"hidden": 64, "epochs": 8, "batch_size": 64, "num_negatives": 256, "lr": 1e-3},
    }
    uses_labels = False
    LOSS_KEYS: ClassVar[tuple[str, ...]] = ("loss", "loss_c", "loss_r")

    @classmethod
    def dataset_params(cls, dataset: str) -> dict[str, Any]:
        """The README's MIRFlickr feature command (α 0.7, s 0.1): the only published per-dataset
        values (the paper tunes α per dataset without printing it); every other dataset gets
        the defaults, which are the same values."""
        return {"alpha": 0.7, "shift": 0.1} if dataset_key(dataset) == "mirflickr" else {}

    # ---------------------------------------------------------------- training
    def setup(self, data: TrainData, rng: Rng) -> None:
        """Nets (image, then text, one generator), the Adam optimiser and the memory bank."""
        p = self.p
        gen = rng.torch("init")
        img, txt = hash_heads(
            data.image.shape[1], data.text.shape[1], p.hidden, self.bits, p.image_layers, p.text_layers, gen
        )
        self.img_net = img.to(data.device)
        self.txt_net = txt.to(data.device)
        self._params = [*self.img_net.parameters(), *self.txt_net.parameters()]
        self._opt = torch.optim.Adam(self._params, lr=p.lr, weight_decay=p.weight_decay)
        self.memory_ = init_memory(data.n, self.bits, rng.torch("memory"), init=p.memory_init).to(data.device)
        self._batch_gen = rng.torch("batches")
        self._neg_gen = rng.torch("negatives")
        self._bs = min(p.batch_size, data.n)

    def train_epoch(self, epoch: int, data: TrainData, rng: Rng) -> EpochLog:
        """One epoch of memory-bank contrastive training; labels are never read."""
        p = self.p
        log = EpochLog(epoch)
        lr = learning_rate(epoch, p.lr, p.lr_milestones, p.lr_gamma)
        set_lr(self._opt, lr)
        # The code takes in-batch keys whenever its effective δ is ≤ 0: in warm-up, and always
        # when δ = 0 is configured (NCEAverage.py:45).
        warmup = epoch < p.warmup_epochs or p.momentum <= 0
        momentum = 0.0 if warmup else p.momentum
        image, text = data.image.to(torch.float32), data.text.to(torch.float32)
        keys_before = self.memory_.sign()
        self.img_net.train()
        self.txt_net.train()
        means = LossMeans(self.LOSS_KEYS, data.device)
        with log.timer("train", data.device):
            for idx in iter_batches(data.n, self._bs, self._batch_gen, data.device):
                if p.drop_last and idx.numel() < self._bs:
                    continue
                h, g = self.img_net(image[idx]), self.txt_net(text[idx])
                negatives = None
                if not warmup:
                    negatives = draw_negatives(idx.numel(), p.num_negatives, data.n, self._neg_gen).to(data.device)
                terms = ucch_batch_loss(
                    h,
                    g,
                    self.memory_,
                    idx,
                    negatives,
                    alpha=p.alpha,
                    temperature=p.temperature,
                    margin=p.margin,
                    shift=p.shift,
                )
                # The code updates the bank inside the forward, after reading the keys.
                self.memory_[idx] = updated_memory(self.memory_[idx], h, g, momentum, p.memory_update)
                optimizer_step(terms["loss"], self._opt, clip=(self._params, p.clip_norm))
                means.add(terms)
        log.losses.update(means.means())
        log.values["lr"] = lr
        log.values["memory_flips"] = float((self.memory_.sign() != keys_before).float().mean())
        return log
