"""Throughput of ``nrchbench features extract`` (images per second, end to end).

Synthesises N random JPEG images, captions and labels in a temporary directory and runs
the full extraction (decode, preprocess, both towers, chunked HDF5 writes). The rate
excludes model loading. No download is needed:

    # tiny random-weight CLIP (hidden 32, image 32 px), 256 images of 64×64, CPU
    python benchmarks/features_speed.py

    # a real CLIP ViT-B/32 architecture with random weights (same cost as the trained one)
    python benchmarks/features_speed.py --random-clip-b32 --device cuda --n-images 20000 \
        --image-size 500x375 --batch-size 256

    # a local model directory (e.g. from `huggingface-cli download openai/clip-vit-base-patch32 --local-dir DIR`)
    python benchmarks/features_speed.py --model DIR --device cuda --n-images 20000 --image-size 500x375

Also prints the single-thread decode+preprocess rate, which bounds the end-to-end rate on
a GPU machine (multiply by ``--workers``, up to the number of cores).

Figures (see the README section on feature extraction):
    tiny CLIP, 256 images 64×64, CPU (2 shared cores): measured, in the report.
    CLIP ViT-B/32 on one A100/H100 in float16: ESTIMATE, not measured. The model alone runs
    at several thousand images/s (≈4.4 GFLOPs per 224² image); the end-to-end rate is
    bound by JPEG decoding and resizing on the CPU, ≈100–200 images/s per core for
    500×375 JPEGs, so ≈800–1,500 images/s with 8–16 worker threads. MIRFlickr-25K then
    takes well under a minute and MS-COCO (123k images) 2–3 minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = "a photo of red green blue cat dog sky water tree house car person street".split()


def _tokenizer(max_len: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, "[BOS]": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 3), ("[EOS]", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        model_max_length=max_len,
    )


def build_clip(path: Path, b32: bool) -> Path:
    """A random-weight CLIP saved with a word-level tokenizer and an image processor (offline)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    if b32:  # CLIPConfig() defaults = openai/clip-vit-base-patch32's architecture
        cfg, proc = CLIPConfig(), CLIPImageProcessor()
        cfg.text_config.eos_token_id = 2
    else:
        small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
        cfg = CLIPConfig(
            text_config=dict(
                vocab_size=64, max_position_embeddings=16, eos_token_id=2, bos_token_id=3, pad_token_id=0, **small
            ),
            vision_config=dict(image_size=32, patch_size=8, **small),
            projection_dim=16,
        )
        proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPModel(cfg).save_pretrained(path)
    _tokenizer(cfg.text_config.max_position_embeddings).save_pretrained(path)
    proc.save_pretrained(path)
    return path


def make_inputs(root: Path, n: int, width: int, height: int, seed: int = 0) -> dict[str, Path]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = root / "images"
    img.mkdir()
    base = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    for i in range(n):  # a few distinct pixel patterns, saved as JPEG (decoding is part of the cost)
        arr = np.roll(base, shift=int(rng.integers(0, width)), axis=1) if i % 8 else base[::-1]
        Image.fromarray(arr).save(img / f"im{i + 1}.jpg", quality=90)
    (root / "texts.txt").write_text("".join(" ".join(rng.choice(WORDS, 6)) + "\n" for _ in range(n)))
    (root / "labels.csv").write_text("".join(f"im{i + 1},c{i % 5};c{(i * 7) % 5}\n" for i in range(n)))
    return {"images": img, "texts": root / "texts.txt", "labels": root / "labels.csv"}


def preprocess_rate(images: Path, model: Path, k: int = 64) -> float:
    """Single-thread decode + image-processor rate (images/s) on the first k images."""
    from transformers import AutoImageProcessor

    from nrchbench.features.encoders import load_image
    from nrchbench.features.inputs import list_images

    proc = AutoImageProcessor.from_pretrained(str(model), local_files_only=True)
    paths = list_images(images).paths[:k]
    t = time.perf_counter()
    for p in paths:
        proc(images=[load_image(p)], return_tensors="pt")
    return len(paths) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="local model directory (default: a tiny random CLIP)")
    ap.add_argument("--random-clip-b32", action="store_true", help="random-weight CLIP ViT-B/32 from CLIPConfig()")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default=None, choices=["float16", "bfloat16", "float32"])
    ap.add_argument("--n-images", type=int, default=256)
    ap.add_argument("--image-size", default="64x64", help="WIDTHxHEIGHT of the synthetic JPEGs")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--chunk-size", type=int, default=4096)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from nrchbench.features import extract_features

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    width, height = (int(x) for x in args.image_size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="nrch-features-speed-") as tmp:
        root = Path(tmp)
        model = Path(args.model) if args.model else build_clip(root / "model", args.random_clip_b32)
        inputs = make_inputs(root, args.n_images, width, height)
        pre = preprocess_rate(inputs["images"], model)
        res = extract_features(
            inputs["images"],
            inputs["texts"],
            inputs["labels"],
            str(model),
            root / "out",
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            chunk_size=args.chunk_size,
            workers=args.workers,
        )
        result = {
            "model": args.model or ("random CLIP ViT-B/32" if args.random_clip_b32 else "tiny random CLIP"),
            "device": res.manifest["device"],
            "device_name": res.manifest["device_name"],
            "dtype": res.manifest["dtype"],
            "n_images": res.n,
            "image_size": f"{width}x{height}",
            "batch_size": args.batch_size,
            "torch_threads": torch.get_num_threads(),
            "images_per_second": round(res.images_per_second, 1),
            "decode_preprocess_per_thread": round(pre, 1),
            "seconds": round(res.seconds, 2),
        }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>30}: {v}")


if __name__ == "__main__":
    main()
