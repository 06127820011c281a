"""UCCH's memory bank, losses and learning-rate schedule, as pure functions (PEERS.md §4.2).

The method class, its notation, switches and numerical notes are in
:mod:`nrchbench.methods.ucch` (which re-exports everything here); references as there
(``[CODE file:x]`` = the official code, penghu-cs/UCCH @ 0c20e62).
"""

from __future__ import annotations

import bisect
import math

import torch
import torch.nn.functional as F

__all__ = [
    "MEMORY_INITS",
    "MEMORY_UPDATES",
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
