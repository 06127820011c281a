"""UCCH (Hu et al., TPAMI 2023): unsupervised contrastive cross-modal hashing.

References are to ``../shared/docs/PEERS.md`` §4, the UCCH section of ``docs/METHODS.md``, the paper
(``paper/UCCH.pdf`` in the repository) and the official code, penghu-cs/UCCH @ 0c20e62
(``NCE/NCEAverage.py``, ``NCE/NCECriterion.py``, ``src/utils.py`` ``ContrastiveLoss``,
``UCCH.py``, ``utils/config.py``). The pure functions equal their formulas; :class:`UCCH`
trains with them as the official code does. Labels are never read (``uses_labels = False``).

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

import bisect
import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from nrchbench.methods._common import LossMeans, TwoNetEncoder, dataset_key, hash_heads, iter_batches, set_lr
from nrchbench.methods.base import EpochLog, HashingMethod, Rng, TrainData
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

MEMORY_INITS = ("code", "symmetric")
MEMORY_UPDATES = ("code", "paper")


# ============================================================================ memory bank
def init_memory(n: int, bits: int, generator: torch.Generator, init: str = "code") -> torch.Tensor:
    """The initial memory bank V ∈ R^{n×bits} with unit rows of ±1/√bits entries.

    [CODE NCEAverage.py:18–20]: ``stdv = 1/√(L/3)``, ``rnd = randn·2stdv − stdv``,
    V = normalise(sign(rnd)); since stdv > 0, sign(2σz − σ) = sign(z − ½).

    Args:
        n: rows (training pairs). bits: L.
        generator: CPU generator for z (drawn on the CPU, so V does not depend on the device).
        init: ``code`` (sign(z − ½)) or ``symmetric`` (sign(z)).

    Returns:
        n×bits float32 tensor on the CPU.

    Raises:
        ValueError: unknown ``init``.
    """
    z = torch.randn(n, bits, generator=generator)
    if init == "code":
        stdv = 1.0 / math.sqrt(bits / 3)
        z = z.mul(2 * stdv).add(-stdv)
    elif init != "symmetric":
        raise ValueError(f"init_memory: init must be one of {', '.join(MEMORY_INITS)}, got {init!r}")
    return F.normalize(z.sign(), dim=1)


@torch.no_grad()
def updated_memory(
    rows: torch.Tensor, h: torch.Tensor, g: torch.Tensor, momentum: float, memory_update: str = "code"
) -> torch.Tensor:
    """The memory rows of a batch after its step, v_i ← update(v_i, h_i, g_i); no gradient.

    * ``code`` [CODE NCEAverage.py:80–88]: v_i ← normalise(δ·v_i + (1−δ)·normalise((h_i+g_i)/2));
    * ``paper`` [PAPER eq. 5]: v_i ← δ·v_i + (1−δ)·(h_i+g_i)/2.

    δ is 0 during the warm-up epochs (the code passes ``epoch − warmup_epoch < 0``), so the
    rows are then overwritten by normalise((h_i+g_i)/2). The caller writes the result back
    with ``V[idx] = ...`` after reading the batch's keys (the code reads first).

    Args:
        rows: n×L current memory rows V[idx]. h, g: n×L batch outputs (detached here).
        momentum: δ ∈ [0, 1) (code and paper: 0.4).
        memory_update: ``code`` or ``paper``.

    Returns:
        The n×L new rows.

    Raises:
        ValueError: unknown ``memory_update``.
    """
    mean = (h.detach() + g.detach()) / 2
    if memory_update == "code":
        new = rows * momentum + mean.div(mean.norm(dim=1, keepdim=True)) * (1 - momentum)
        return new.div(new.norm(dim=1, keepdim=True))
    if memory_update == "paper":
        return rows * momentum + mean * (1 - momentum)
    raise ValueError(f"updated_memory: memory_update must be one of {', '.join(MEMORY_UPDATES)}, got {memory_update!r}")


def draw_negatives(batch_size: int, num_negatives: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """K memory indices per batch row, uniform over 0..n−1 **with replacement**.

    [CODE NCEAverage.py:43, AliasMethod with equal probabilities = uniform draws]. Nothing is
    excluded: a draw may hit the row's own index or a batch mate. Drawn on the generator's
    device.

    Returns:
        (batch_size, num_negatives) int64 tensor.
    """
    return torch.randint(0, n, (batch_size, num_negatives), generator=generator, device=generator.device)


# ============================================================================ losses
def key_logits(out: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits ⟨k, h⟩ / (T·√L) of each row against its own key set [CODE NCEAverage.py:17, 55–60].

    For keys in {−1, +1}^L and unit h this is cos(k, h)/T, the paper's eq. 4 with
    ℓ2-normalised keys.

    Args:
        out: n×L outputs. keys: n×M×L keys (column 0 = the positive). temperature: T.

    Returns:
        n×M logits.
    """
    return torch.bmm(keys, out.unsqueeze(2)).squeeze(2) / (temperature * math.sqrt(out.shape[1]))


def _ce_first(logits: torch.Tensor) -> torch.Tensor:
    """mean_i −log softmax(logits_i)[0] [CODE NCECriterion.py, ``NCESoftmaxLoss``]."""
    return -F.log_softmax(logits, dim=1)[:, 0].mean()


def contrastive_hash_loss(
    h: torch.Tensor,
    g: torch.Tensor,
    memory: torch.Tensor,
    idx: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float = 0.9,
) -> torch.Tensor:
    """The contrastive hashing loss L_c with memory-bank keys (PEERS.md §4.2; paper eqs. 3–4).

    [CODE NCEAverage.py:52–60, NCECriterion.py, UCCH.py:156–159]. Keys of row i:
    k_i,0 = sign(v_{idx_i}) (the positive) and k_i,r = sign(v_{negatives_ir}), r = 1..K; the
    memory is read as a constant (no gradient). With P_i(h) = softmax_r(⟨k_i,r, h_i⟩/(T√L))_0:

    ::

        L_c = −(1/n) Σ_i log P_i(h) − (1/n) Σ_i log P_i(g)

    Computation: the code gathers the n×(K+1)×L key tensor (268 MB at n = 256, K = 4096,
    L = 64) and multiplies it by each output. When the bank has at most (K+1)·L rows, the same
    logits are taken from the n×N products with every key, h·sign(V)ᵀ, gathered at the drawn
    indices: the same dot products (equal up to float summation order), without the key tensor
    — about 15× faster on wiki on a CPU. Larger banks use the code's gather.

    Args:
        h, g: n×L image and text outputs. memory: N×L bank V (before this batch's update).
        idx: (n,) training indices of the batch. negatives: (n, K) indices
            (:func:`draw_negatives`). temperature: T (code and paper: 0.9).

    Returns:
        The scalar L_c.
    """
    cols = torch.cat([idx.unsqueeze(1), negatives], dim=1)
    if memory.shape[0] <= cols.shape[1] * memory.shape[1]:
        keys = memory.detach().sign()
        scale = temperature * math.sqrt(h.shape[1])
        return _ce_first(torch.gather(h @ keys.t(), 1, cols) / scale) + _ce_first(
            torch.gather(g @ keys.t(), 1, cols) / scale
        )
    keys = memory[cols].detach().sign()
    return _ce_first(key_logits(h, keys, temperature)) + _ce_first(key_logits(g, keys, temperature))


def warmup_contrastive_loss(h: torch.Tensor, g: torch.Tensor, temperature: float = 0.9) -> torch.Tensor:
    """L_c of the warm-up epochs: in-batch keys sign((h_j + g_j)/2) (PEERS.md §4.2).

    [CODE NCEAverage.py:46–50]: for epoch index < ``warmup_epoch`` the keys of row i are the
    batch's own sign((h_j+g_j)/2), its own first, then the n − 1 others. The keys carry no
    gradient (the derivative of sign is 0). The cross-entropy does not depend on the order of
    the negatives, so with k_j = sign((h_j+g_j)/2):

    ::

        L_c = −(1/n) Σ_i log softmax_j(⟨k_j, h_i⟩/(T√L))_i − (same with g)

    Returns:
        The scalar L_c.
    """
    keys = ((h.detach() + g.detach()) / 2).sign()
    scale = temperature * math.sqrt(h.shape[1])
    target = torch.arange(h.shape[0], device=h.device)
    return F.cross_entropy(h @ keys.t() / scale, target) + F.cross_entropy(g @ keys.t() / scale, target)


def ranking_loss(
    h: torch.Tensor, g: torch.Tensor, margin: float = 0.2, shift: float = 0.1, tau: float = 1.0
) -> torch.Tensor:
    """The cross-modal ranking loss L_r (PEERS.md §4.2; paper eqs. 8, 14).

    [CODE src/utils.py:57–70, ``ContrastiveLoss.forward`` with ``s`` given]. With S = h gᵀ:

    * c_ij = S_ij if S_ij ≥ S_ii − m else S_ij − s (row anchors; the diagonal keeps S_ii);
    * c'_ij = S_ij if S_ij ≥ S_jj − m else S_ij − s (column anchors);

    ::

        L_r = (1/n) Σ_i [−c_ii + τ·log Σ_j exp(c_ij/τ) + m]
            + (1/n) Σ_j [−c'_jj + τ·log Σ_i exp(c'_ij/τ) + m]

    The diagonal is **not** clamped (unlike NRCH/SCBCH) and stays inside the log-sum-exp.

    Args:
        h, g: n×L outputs. margin: m (code and paper: 0.2).
        shift: s — the README command's 0.1 (the argparse default is 1.0, the
            ``ContrastiveLoss`` class default 2.0; the paper's ξ > 0 is not given).
        tau: τ (the code calls it with 1).

    Returns:
        The scalar L_r.
    """
    S = h @ g.t()
    d = S.diagonal()
    rows = torch.where(S >= d[:, None] - margin, S, S - shift)
    cols = torch.where(S >= d[None, :] - margin, S, S - shift)
    i2t = (-rows.diagonal() + tau * torch.logsumexp(rows / tau, dim=1) + margin).mean()
    t2i = (-cols.diagonal() + tau * torch.logsumexp(cols / tau, dim=0) + margin).mean()
    return i2t + t2i


def ucch_batch_loss(
    h: torch.Tensor,
    g: torch.Tensor,
    memory: torch.Tensor,
    idx: torch.Tensor,
    negatives: torch.Tensor | None,
    *,
    alpha: float = 0.7,
    temperature: float = 0.9,
    margin: float = 0.2,
    shift: float = 0.1,
) -> dict[str, torch.Tensor]:
    """The training loss of one batch: L = α·L_c + (1 − α)·L_r [CODE UCCH.py:156–161; paper eq. 15].

    Args:
        h, g: n×L outputs. memory: the bank V before this batch's update. idx: (n,) indices.
        negatives: (n, K) memory indices, or None in a warm-up epoch (in-batch keys,
            :func:`warmup_contrastive_loss`).
        alpha: α (the paper's β): the README feature command's 0.7 (argparse default 0.9).
        temperature: T. margin: m. shift: s (README 0.1, see :func:`ranking_loss`).

    The defaults are the README feature command's (``--alpha 0.7 --margin 0.2 --shift 0.1``),
    the authors' published run, as for SCBCH's α/β.

    Returns:
        ``loss`` (to backpropagate) and the unweighted terms ``loss_c`` and ``loss_r``.
    """
    if negatives is None:
        l_c = warmup_contrastive_loss(h, g, temperature)
    else:
        l_c = contrastive_hash_loss(h, g, memory, idx, negatives, temperature)
    l_r = ranking_loss(h, g, margin=margin, shift=shift)
    return {"loss": alpha * l_c + (1.0 - alpha) * l_r, "loss_c": l_c, "loss_r": l_r}


def learning_rate(epoch: int, lr: float, milestones: tuple[int, ...] | list[int], gamma: float) -> float:
    """The learning rate of ``epoch`` under the code's ``MultiStepLR`` use [CODE UCCH.py:225–228].

    The code calls ``lr_schedu.step(epoch)`` *after* training epoch ``epoch`` (and ``step(0)``
    before the first), so epoch t ≥ 1 trains with lr·γ^{#{m ∈ milestones : m ≤ t − 1}}: with
    milestones 30/60/90/120 the first decay applies from epoch index 31, not 30.
    """
    if epoch <= 0:
        return float(lr)
    return float(lr) * float(gamma) ** bisect.bisect_right(sorted(milestones), epoch - 1)


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
                self._opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                torch.nn.utils.clip_grad_norm_(self._params, p.clip_norm)
                self._opt.step()
                means.add(terms)
        log.losses.update(means.means())
        log.values["lr"] = lr
        log.values["memory_flips"] = float((self.memory_.sign() != keys_before).float().mean())
        return log
