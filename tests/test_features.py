"""``nrchbench features extract``: tiny random-weight models built offline, a dozen generated images.

No network: every model, tokenizer and image processor is built from a config and saved
to a temporary directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nrchbench.errors import DataError
from nrchbench.features.labels import read_labels

pytestmark = pytest.mark.features

N = 12
WORDS = "a photo of red green blue cat dog sky water tree house car".split()
CLASSES = ["animal", "nature", "urban"]


# --------------------------------------------------------------------------- label parsing (no transformers)

IDS = ["im1", "im2", "im3"]


def test_labels_pairs_csv_and_tsv(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("image_id,labels\nim1,sky;water\nim2,dog\nim3.jpg,\n")
    m, names = read_labels(p, IDS)
    assert names == ["dog", "sky", "water"]
    np.testing.assert_array_equal(m, [[0, 1, 1], [1, 0, 0], [0, 0, 0]])
    t = tmp_path / "l.tsv"
    t.write_text("im1\tsky\nim1\twater\nim2\tdog\nim3\tsky\n")
    m, names = read_labels(t, IDS)
    assert names == ["dog", "sky", "water"]
    np.testing.assert_array_equal(m, [[0, 1, 1], [1, 0, 0], [0, 1, 0]])


def test_labels_matrix_formats(tmp_path: Path) -> None:
    want = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.uint8)
    p = tmp_path / "m.txt"
    p.write_text("sky water\n1 0\n0 1\n1 1\n")
    m, names = read_labels(p, IDS)
    assert names == ["sky", "water"]
    np.testing.assert_array_equal(m, want)
    p.write_text("1,0\n0,1\n1,1\n")
    m, names = read_labels(p, IDS)
    assert names is None
    np.testing.assert_array_equal(m, want)
    p.write_text("image_id,sky,water\nim3,1,1\nim1,1,0\nim2,0,1\n")
    m, names = read_labels(p, IDS)
    assert names == ["sky", "water"]
    np.testing.assert_array_equal(m, want)
    np.save(tmp_path / "m.npy", want)
    m, names = read_labels(tmp_path / "m.npy", IDS)
    np.testing.assert_array_equal(m, want)


def test_labels_errors(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("im1,sky\nim2,dog\n")
    with pytest.raises(DataError, match=r"have no label row.*im3"):
        read_labels(p, IDS)
    p.write_text("im1,sky\nim2,dog\nim3,sky\nim9,dog\n")
    with pytest.raises(DataError, match=r"not among the images.*im9"):
        read_labels(p, IDS)
    m, _ = read_labels(p, IDS, ignore_unknown_ids=True)
    assert m.shape == (3, 2)
    p.write_text("1 0\n0 1\n")
    with pytest.raises(DataError, match="2 label rows but 3 images"):
        read_labels(p, IDS)
    np.save(tmp_path / "bad.npy", np.array([[2, 0], [0, 1], [1, 1]]))
    with pytest.raises(DataError, match="only 0 and 1"):
        read_labels(tmp_path / "bad.npy", IDS)


def test_image_listing_texts_and_revision(tmp_path: Path) -> None:
    from nrchbench.features.inputs import list_images, read_texts
    from nrchbench.features.models import _revision

    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for name in ("im10.jpg", "im2.png", "sub/im1.jpg", "notes.txt"):
        (d / name).write_bytes(b"x")
    listing = list_images(d)
    assert listing.names == ["im2.png", "im10.jpg", "sub/im1.jpg"] and listing.ids == ["im2", "im10", "im1"]
    (tmp_path / "list.txt").write_text("imgs/im10.jpg\n\n# comment\nimgs/sub/im1.jpg\n")
    assert list_images(tmp_path / "list.txt").ids == ["im10", "im1"]
    assert list_images(d).checksum() != list_images(tmp_path / "list.txt").checksum()

    t = tmp_path / "t.tsv"
    t.write_text("image_id\ttext\nim10\ta dog\nim1\tsky\nim2\tcat\nim10\ta red dog\n")
    texts, mode = read_texts(t, listing.ids)
    assert mode == "tsv" and texts == [["cat"], ["a dog", "a red dog"], ["sky"]]
    t.write_text("im10\ta dog\nim2\tcat\n")
    with pytest.raises(DataError, match="have no text row"):
        read_texts(t, listing.ids)
    lines = tmp_path / "t.txt"
    lines.write_text("one\ntwo\n")
    with pytest.raises(DataError, match="2 lines but 3 images"):
        read_texts(lines, listing.ids)

    meta = tmp_path / "model" / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "config.json.metadata").write_text("0123456789abcdef0123456789abcdef01234567\netag\n1.0\n")
    assert _revision(object(), tmp_path / "model") == "0123456789abcdef0123456789abcdef01234567"
    assert _revision(object(), tmp_path) is None


def test_stored_split_is_the_random_rule_of_the_loader() -> None:
    from nrchbench.datasets.splits import make_splits as loader_splits
    from nrchbench.errors import ConfigError
    from nrchbench.features.inputs import make_splits

    got = make_splits(50, 5, 20, seed=3)
    want = loader_splits(50, "random", sizes=(5, 20), seed=3)
    for k in ("query", "train", "database"):
        np.testing.assert_array_equal(got[k], np.sort(want[k]))
    with pytest.raises(ConfigError, match=r"--query 40 --train 20: need positive sizes"):
        make_splits(50, 40, 20, seed=0)


# --------------------------------------------------------------------------- fixtures: tiny models and data


def _word_tokenizer(max_len: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, "[BOS]": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 3), ("[EOS]", 2)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        model_max_length=max_len,
    )
    return tok, len(vocab)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("transformers")
    pytest.importorskip("PIL")
    import torch
    from transformers import BertConfig, BertModel, CLIPConfig, CLIPImageProcessor, CLIPModel, ViTConfig, ViTModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    tok, vocab_size = _word_tokenizer(16)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)

    clip = root / "tiny-clip"
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size, max_position_embeddings=16, eos_token_id=2, bos_token_id=3, pad_token_id=0, **small
        ),
        vision_config=dict(image_size=32, patch_size=8, **small),
        projection_dim=16,
    )
    CLIPModel(cfg).save_pretrained(clip)
    tok.save_pretrained(clip)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(clip)

    vit = root / "tiny-vit"
    ViTModel(ViTConfig(image_size=32, patch_size=8, **small)).save_pretrained(vit)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(vit)

    bert = root / "tiny-bert"
    BertModel(BertConfig(vocab_size=vocab_size, max_position_embeddings=32, **small)).save_pretrained(bert)
    tok.save_pretrained(bert)
    return {"clip": clip, "vit": vit, "bert": bert}


@pytest.fixture(scope="module")
def raw_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    PIL = pytest.importorskip("PIL.Image")
    root = tmp_path_factory.mktemp("raw")
    rng = np.random.default_rng(0)
    img_dir = root / "images"
    img_dir.mkdir()
    captions, label_rows = [], []
    for i in range(1, N + 1):
        h, w = rng.integers(24, 48, size=2)
        colour = rng.integers(0, 255, size=3)
        arr = np.clip(colour + rng.integers(-20, 20, size=(h, w, 3)), 0, 255).astype(np.uint8)
        PIL.fromarray(arr).save(img_dir / f"im{i}.{'png' if i % 2 else 'jpg'}")
        captions.append(" ".join(rng.choice(WORDS, size=rng.integers(2, 6))))
        labels = [c for c in CLASSES if rng.random() < 0.5] or [CLASSES[i % 3]]
        label_rows.append(f"im{i},{';'.join(labels)}")
    (root / "captions.txt").write_text("\n".join(captions) + "\n")
    (root / "labels.csv").write_text("image_id,labels\n" + "\n".join(label_rows) + "\n")
    return {"images": img_dir, "texts": root / "captions.txt", "labels": root / "labels.csv"}


def _h5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


# --------------------------------------------------------------------------- extraction


def test_clip_extract_resume_and_load(tiny_models, raw_data, tmp_path: Path, monkeypatch) -> None:
    from nrchbench.datasets import load_dataset
    from nrchbench.features import writer
    from nrchbench.features.encoders import ImageTower
    from nrchbench.features.extract import extract_features

    calls: list[int] = []
    encode = ImageTower.encode

    def counting(self, pixel_values):
        calls.append(int(pixel_values.shape[0]))
        return encode(self, pixel_values)

    monkeypatch.setattr(ImageTower, "encode", counting)

    class Interrupt(Exception):
        pass

    def stop_after_first_chunk(done: int, total: int, stage: str) -> None:
        if stage == "chunk":
            raise Interrupt

    out = tmp_path / "ds"
    kw = dict(batch_size=3, chunk_size=5, workers=2, device="cpu")
    with pytest.raises(Interrupt):
        extract_features(
            raw_data["images"],
            raw_data["texts"],
            raw_data["labels"],
            str(tiny_models["clip"]),
            out,
            progress=stop_after_first_chunk,
            **kw,
        )
    assert sum(calls) == 5  # rows 0-4: batches of 3 + 2
    state = json.loads((out / writer.STATE_FILE).read_text())
    assert state["rows_done"] == 5 and not (out / "data.h5").exists()

    calls.clear()
    res = extract_features(
        raw_data["images"], raw_data["texts"], raw_data["labels"], str(tiny_models["clip"]), out, **kw
    )
    assert sum(calls) == N - 5, "finished chunk 0 was recomputed"
    assert res.resumed_from == 5 and res.rows_computed == N - 5

    data = _h5(out / "data.h5")
    assert data["image"].shape == (N, 16) and data["text"].shape == (N, 16)
    assert data["image"].dtype == np.float32 and data["labels"].dtype == np.uint8
    assert data["labels"].shape == (N, len(CLASSES))
    assert [c.decode() for c in data["class_names"]] == CLASSES
    assert np.isfinite(data["image"]).all() and (np.abs(data["image"]).sum(1) > 0).all()

    # The resumed file equals an uninterrupted extraction.
    full = extract_features(
        raw_data["images"], raw_data["texts"], raw_data["labels"], str(tiny_models["clip"]), tmp_path / "full", **kw
    )
    ref = _h5(full.out / "data.h5")
    np.testing.assert_allclose(data["image"], ref["image"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data["text"], ref["text"], rtol=1e-5, atol=1e-6)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["image"]["pooling"].startswith("projection")
    assert manifest["image"]["dim"] == 16 and manifest["dtype"] == "float32" and manifest["device"] == "cpu"
    assert manifest["image"]["preprocessing"]["crop_size"] == {"height": 32, "width": 32}
    assert len(manifest["inputs"]["texts"]["sha256"]) == 64

    # Rerun: nothing to do. Changed inputs: refused with a hint.
    calls.clear()
    again = extract_features(
        raw_data["images"], raw_data["texts"], raw_data["labels"], str(tiny_models["clip"]), out, **kw
    )
    assert again.rows_computed == 0 and not calls
    other = tmp_path / "captions2.txt"
    other.write_text(raw_data["texts"].read_text().replace("a", "the"))
    from nrchbench.errors import NrchbenchError

    with pytest.raises(NrchbenchError, match=r"changed: texts.*--overwrite"):
        extract_features(raw_data["images"], other, raw_data["labels"], str(tiny_models["clip"]), out, **kw)

    ds = load_dataset(str(out))
    assert ds.image.shape == (N, 16) and ds.labels.shape == (N, 3) and ds.class_names == CLASSES
    assert set(ds.splits) >= {"query", "train", "database"}
    _run_through(out, tmp_path)


def test_cli_vit_bert_with_split_runs(tiny_models, raw_data, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nrchbench.cli import main
    from nrchbench.datasets import load_dataset

    out = tmp_path / "vb"
    listing = raw_data["images"].parent / "list.txt"
    listing.write_text("".join(f"images/im{i}.{'png' if i % 2 else 'jpg'}\n" for i in range(1, N + 1)))
    tsv = tmp_path / "caps.tsv"
    caps = raw_data["texts"].read_text().splitlines()
    tsv.write_text("".join(f"im{i}\t{c}\nim{i}\tred car\n" for i, c in enumerate(caps, 1)))
    args = [
        "features", "extract", "--images", str(listing), "--texts", str(tsv), "--labels", str(raw_data["labels"]),
        "--model", str(tiny_models["vit"]), "--text-model", str(tiny_models["bert"]), "--out", str(out),
        "--device", "cpu", "--batch-size", "4", "--chunk-size", "8", "--query", "3", "--train", "6", "--split-seed", "1",
    ]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    data = _h5(out / "data.h5")
    assert data["image"].shape == (N, 32) and data["text"].shape == (N, 32)
    assert len(data["query"]) == 3 and len(data["train"]) == 6 and len(data["database"]) == N - 3
    assert not set(data["query"]) & set(data["database"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["image"]["pooling"] == "pooler" and manifest["text"]["pooling"] == "mean"
    assert manifest["text"]["model"] == str(tiny_models["bert"]) and manifest["splits"]["seed"] == 1

    ds = load_dataset(str(out))
    assert ds.meta["split_rule"] == "official"
    np.testing.assert_array_equal(ds.splits["query"], data["query"])

    _run_through(out, tmp_path)


def _run_through(dataset: Path, tmp_path: Path) -> None:
    """``nrchbench run`` takes the extracted directory unchanged."""
    from click.testing import CliRunner

    from nrchbench.cli import main

    pytest.importorskip("nrchbench.cli.run", reason="nrchbench run is not available")
    args = ["run", "--method", "nrch", "--bits", "16", "--preset", "tiny", "--noise", "0.2", "--device", "cpu"]
    res = CliRunner().invoke(main, [*args, "--dataset", str(dataset), "--out", str(tmp_path / "results")])
    assert res.exit_code == 0, res.output
    records = list((tmp_path / "results").rglob("*.json"))
    assert records and json.loads(records[0].read_text())["status"] == "ok"


def test_unknown_model_offline_is_one_line_error(raw_data, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from click.testing import CliRunner

    from nrchbench.cli import main

    args = [
        "features", "extract", "--images", str(raw_data["images"]), "--texts", str(raw_data["texts"]),
        "--labels", str(raw_data["labels"]), "--model", "nobody/no-such-model-xyz", "--out", str(tmp_path / "o"),
    ]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0
    msg = res.output.strip().splitlines()
    assert len(msg) == 1, res.output
    assert "huggingface-cli download nobody/no-such-model-xyz --local-dir" in msg[0]
    assert "--allow-download" in msg[0]


def test_missing_extra_message(monkeypatch) -> None:
    import builtins

    from nrchbench.errors import NrchbenchError
    from nrchbench.features.models import require_extra

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "transformers":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(NrchbenchError, match=r"nrchbench\[features\]"):
        require_extra()
