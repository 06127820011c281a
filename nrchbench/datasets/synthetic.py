"""``synthetic``: the embedded default dataset, generated from a seed (no files)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from nrchbench.datasets.base import DatasetLoader, DatasetOptions, RawData
from nrchbench.errors import ConfigError
from nrchbench.registry import DATASETS


def _topk_mask(keys: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Row-wise mask of the k[i] largest entries of keys[i] (vectorised)."""
    order = np.argsort(-keys, axis=1)
    ranks = np.empty_like(order)
    rows = np.arange(keys.shape[0])[:, None]
    ranks[rows, order] = np.arange(keys.shape[1])[None, :]
    return ranks < k[:, None]


@DATASETS.register("synthetic")
class Synthetic(DatasetLoader):
    """Synthetic multi-label image/text pairs from a seed: the embedded default (no files needed).

    How it is generated (all from ``np.random.default_rng(seed)``, vectorised, < 1 s):

    1. **Labels.** ``topics`` latent topics, each a sparse Dirichlet profile over the
       ``classes`` classes (so classes co-occur in groups, like MIRFlickr's sky/clouds/sea).
       Each row draws one topic, a label cardinality ``1 + Poisson(mean_labels − 1)`` (capped
       at ``max_labels``), and that many distinct classes from a mixture of its topic profile
       (weight 0.8) and a uniform profile (0.2). Every row has ≥ 1 label.
    2. **Shared semantics.** Each class has a random ``latent_dim``-d embedding; a row's
       semantic vector is the mean of its classes' embeddings plus its topic's embedding
       (weight 0.5), scaled by a per-row signal strength drawn from U(0.35, 1) (some items
       are ambiguous).
    3. **Image** (``image_dim``-d, dense, non-negative, like post-ReLU CNN features):
       ReLU of a random linear map of [semantics; ``nuisance_dim``-d image-only nuisance]
       plus Gaussian noise (``image_noise``).
    4. **Text** (``text_dim``-word vocabulary, sparse binary bag-of-words, like MIRFlickr
       tags): each class owns ``words_per_class`` words, each emitted with probability
       ``word_prob`` per positive class; each topic owns a few more words; plus
       ``Poisson(random_words)`` background words drawn from a Zipf-like distribution. Rows
       with no word get one background word.

    Options (:class:`Synthetic.Options`; keyword arguments of ``load_dataset("synthetic", ...)``):
        seed (0), n (12000), classes (24), topics (8), mean_labels (3.0), max_labels (10),
        latent_dim (32), image_dim (512), nuisance_dim (32), image_noise (1.0),
        text_dim (1000), words_per_class (6), word_prob (0.35), random_words (4.0),
        query (1000 × n/12000), train (5000 × n/12000).

    Default split ``nrch``: query = first 1,000 rows, train = next 5,000, database = the
    11,000 rows after the query (train ⊂ database). ``n=600`` gives a tiny set for tests
    (query 50, train 250).

    What it is evidence of: that a method runs end to end, learns cross-modal structure
    from labels (clean-label hashing lands well above chance and below perfect), and
    degrades under label noise; relative orderings of *implementations* (bugs, regressions,
    noise handling working at all). What it is **not** evidence of: performance on real
    data. Features are not CNN/BoW statistics of real images and tags, classes are not
    visual concepts, and the noise-free structure is simpler than real data; never report
    synthetic numbers as comparable to published MIRFlickr/NUS-WIDE/COCO results.
    """

    name = "synthetic"
    description = "generated from a seed, no files: 12,000 multi-label pairs, 512-d image / 1000-word text, 24 classes"
    needs_files = False
    default_split = "contiguous"
    split_sizes = (1000, 5000)
    image_nonnegative = True

    class Options(DatasetOptions):
        """Options of ``synthetic`` (see the class docstring)."""

        seed: int = Field(0, description="generator seed")
        n: int = Field(12000, ge=20, description="rows")
        classes: int = Field(24, ge=2, description="label classes")
        topics: int = Field(8, ge=1, description="latent topics (class co-occurrence groups)")
        mean_labels: float = Field(3.0, ge=1, description="mean labels per row")
        max_labels: int = Field(10, ge=1, description="most labels per row")
        latent_dim: int = Field(32, ge=1, description="dimension of the shared semantics")
        image_dim: int = Field(512, ge=1, description="image feature dimension")
        nuisance_dim: int = Field(32, ge=0, description="image-only nuisance dimensions")
        image_noise: float = Field(1.0, ge=0, description="std of the image feature noise")
        text_dim: int = Field(1000, ge=1, description="text vocabulary size")
        words_per_class: int = Field(6, ge=1, description="words owned by each class")
        word_prob: float = Field(0.35, ge=0, le=1, description="emission probability of a class word")
        random_words: float = Field(4.0, ge=0, description="mean background words per row")
        query: int | None = Field(None, ge=1, description="query rows of the nrch split (default 1000·n/12000)")
        train: int | None = Field(None, ge=1, description="train rows of the nrch split (default 5000·n/12000)")

        def sizes(self) -> tuple[int, int]:
            """(query, train) of the default split."""
            q = self.query if self.query is not None else max(1, round(1000 * self.n / 12000))
            t = self.train if self.train is not None else max(1, round(5000 * self.n / 12000))
            return q, t

        def check_together(self, owner: str) -> None:
            if not self.mean_labels <= self.max_labels <= self.classes:
                raise ConfigError(f"{owner}: need 1 ≤ mean_labels ≤ max_labels ≤ classes")
            if self.text_dim < self.classes * self.words_per_class + self.topics * 3 + 10:
                raise ConfigError(
                    f"{owner}: text_dim={self.text_dim} too small for {self.classes}×{self.words_per_class} class words"
                )
            q, t = self.sizes()
            if q + t > self.n:
                raise ConfigError(f"{owner}: query {q} + train {t} > n {self.n}")

    def read(self, directory: Path, options: DatasetOptions | Mapping[str, Any] | None = None) -> RawData:
        o = options if isinstance(options, self.Options) else self.Options.check(options, owner="synthetic")
        self.split_sizes = o.sizes()
        n, classes, topics, text_dim = o.n, o.classes, o.topics, o.text_dim
        rng = np.random.default_rng(o.seed)

        # 1. labels
        profiles = rng.dirichlet(np.full(classes, 0.3), size=topics)
        profiles = 0.8 * profiles + 0.2 / classes
        topic = rng.integers(0, topics, size=n)
        k = np.minimum(1 + rng.poisson(o.mean_labels - 1, size=n), o.max_labels)
        gumbel = -np.log(-np.log(rng.random((n, classes))))
        keys = np.log(profiles[topic]) + gumbel  # Gumbel top-k = sampling without replacement
        labels = _topk_mask(keys, k).astype(np.uint8)

        # 2. shared semantics
        class_emb = rng.standard_normal((classes, o.latent_dim)).astype(np.float32)
        topic_emb = rng.standard_normal((topics, o.latent_dim)).astype(np.float32)
        lab_f = labels.astype(np.float32)
        sem = (lab_f @ class_emb) / lab_f.sum(1, keepdims=True) + 0.5 * topic_emb[topic]
        strength = rng.uniform(0.35, 1.0, size=(n, 1)).astype(np.float32)
        sem *= strength

        # 3. image: ReLU(W [sem; nuisance] + noise)
        nuis = rng.standard_normal((n, o.nuisance_dim)).astype(np.float32)
        w_sem = rng.standard_normal((o.latent_dim, o.image_dim)).astype(np.float32) / np.sqrt(o.latent_dim)
        w_nuis = rng.standard_normal((o.nuisance_dim, o.image_dim)).astype(np.float32) / np.sqrt(o.nuisance_dim)
        image = sem @ w_sem
        image += nuis @ w_nuis
        image += o.image_noise * rng.standard_normal((n, o.image_dim), dtype=np.float32)
        image -= 0.5
        np.maximum(image, 0.0, out=image)

        # 4. text: class words + topic words + Zipf-like background words
        class_words = rng.permutation(text_dim)[: classes * o.words_per_class].reshape(classes, o.words_per_class)
        n_topic_words = 3
        topic_words = rng.integers(0, text_dim, size=(topics, n_topic_words))
        text = np.zeros((n, text_dim), dtype=np.float32)
        # one Bernoulli(word_prob) draw per (row, positive class, class word): sparse, so cheap
        pos_rows, pos_cls = np.nonzero(labels)
        emit = rng.random((pos_rows.size, o.words_per_class)) < o.word_prob
        text[np.repeat(pos_rows, o.words_per_class)[emit.ravel()], class_words[pos_cls].ravel()[emit.ravel()]] = 1.0
        tw = topic_words[topic]
        tw_on = rng.random(tw.shape) < 0.3
        text[np.repeat(np.arange(n), n_topic_words)[tw_on.ravel()], tw.ravel()[tw_on.ravel()]] = 1.0
        zipf = 1.0 / np.arange(1, text_dim + 1)
        zipf /= zipf.sum()
        word_perm = rng.permutation(text_dim)
        n_bg = rng.poisson(o.random_words, size=n)
        n_bg[text.sum(1) == 0] += 1
        bg_rows = np.repeat(np.arange(n), n_bg)
        bg_words = word_perm[rng.choice(text_dim, size=int(n_bg.sum()), p=zipf)]
        text[bg_rows, bg_words] = 1.0

        return RawData(
            image=np.ascontiguousarray(image, dtype=np.float32),
            text=text,
            labels=labels,
            class_names=[f"class{c:02d}" for c in range(classes)],
            version="1",
            sources={"image": "synthetic image", "text": "synthetic text", "labels": "synthetic labels"},
            meta={"generator": "nrchbench.datasets.synthetic v1", "seed": o.seed},
        )
