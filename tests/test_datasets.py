"""Dataset loaders, MATLAB/HDF5 reading, validation errors, split rules, synthetic data."""

from __future__ import annotations

import json
import os
import time

import h5py
import numpy as np
import pytest
import scipy.io

from nrchbench.datasets import DATASETS, chance_map, dataset_info, get_loader, load_dataset
from nrchbench.datasets.io import file_format, read_matrix
from nrchbench.datasets.splits import carve_val, make_splits, split_checksums
from nrchbench.errors import ConfigError, DataError, RegistryError

# ---------------------------------------------------------------------------- helpers


def write_mat73(path, arrays: dict[str, np.ndarray]) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte MATLAB header, arrays transposed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, arr in arrays.items():
            ds = f.create_dataset(name, data=np.ascontiguousarray(arr.T))
            ds.attrs["MATLAB_class"] = np.bytes_({"float32": "single", "uint8": "uint8"}.get(str(arr.dtype), "double"))
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Nov 27 10:00:00 2026 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM")


def write_mat(path, arrays, fmt):
    if fmt == "v5":
        scipy.io.savemat(path, arrays)
    else:
        write_mat73(path, arrays)


def small_triple(directory, n=40, dims=(16, 12, 5), fmt="v5", *, seed=0, names=None, **override):
    """A small mirflickr-layout triple (XAll/YAll/LAll) under ``directory``."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, dims[0]), dtype=np.float32)
    y = (rng.random((n, dims[1])) < 0.3).astype(np.float32)
    lab = (rng.random((n, dims[2])) < 0.3).astype(np.uint8)
    lab[:, 0] = 1
    arrays = {"XAll": x, "YAll": y, "LAll": lab}
    arrays.update(override)
    names = names or ("mirflickr25k-iall-vgg.mat", "mirflickr25k-yall.mat", "mirflickr25k-lall.mat")
    directory.mkdir(parents=True, exist_ok=True)
    for (var, arr), fname in zip(arrays.items(), names):
        write_mat(directory / fname, {var: arr}, fmt)
    return arrays


SMALL = {"check_dims": False, "query_size": 5, "train_size": 10}


# ---------------------------------------------------------------------------- io


@pytest.mark.parametrize("fmt", ["v5", "v73"])
def test_read_matrix_roundtrip_and_transpose(tmp_path, fmt):
    a = np.arange(15, dtype=np.float64).reshape(5, 3)
    write_mat(tmp_path / "a.mat", {"A": a, "L": np.eye(3)}, fmt)
    assert file_format(tmp_path / "a.mat") == ("mat5" if fmt == "v5" else "mat73")
    got = read_matrix(tmp_path / "a.mat", "A")
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, a)
    lab = read_matrix(tmp_path / "a.mat", "L", kind="labels")
    assert lab.dtype == np.uint8 and lab.shape == (3, 3)


def test_read_matrix_blocks_plain_hdf5_and_sparse_v5(tmp_path, monkeypatch):
    import nrchbench.datasets.io as dio

    monkeypatch.setattr(dio, "_BLOCK_BYTES", 64)  # force many blocks
    a = np.random.default_rng(0).random((37, 5))
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["A"] = a
    assert file_format(tmp_path / "p.h5") == "hdf5"
    np.testing.assert_allclose(read_matrix(tmp_path / "p.h5", "A"), a.astype(np.float32))
    write_mat73(tmp_path / "t.mat", {"A": a})
    np.testing.assert_allclose(read_matrix(tmp_path / "t.mat", "A"), a.astype(np.float32))
    import scipy.sparse

    scipy.io.savemat(tmp_path / "s.mat", {"Y": scipy.sparse.csc_matrix(np.eye(4))})
    np.testing.assert_array_equal(read_matrix(tmp_path / "s.mat", "Y"), np.eye(4, dtype=np.float32))


# ---------------------------------------------------------------------------- real data


def test_wiki_real(shared_data):
    t0 = time.perf_counter()
    ds = load_dataset("wikipedia", data_root=shared_data)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10
    assert ds.name == "wiki" and ds.n == 2866
    assert (ds.image_dim, ds.text_dim, ds.num_classes) == (128, 10, 10)
    assert ds.class_names[0] == "art" and ds.class_names[-1] == "warfare"
    assert ds.meta["split_rule"] == "official"
    assert {k: v.size for k, v in ds.splits.items()} == {"query": 693, "train": 2173, "database": 2173}
    np.testing.assert_array_equal(ds.splits["train"], ds.splits["database"])
    assert not np.intersect1d(ds.splits["query"], ds.splits["database"]).size
    assert (ds.labels.sum(1) == 1).all() and not ds.multi_label
    assert set(ds.meta["source_checksums"]) == {
        "raw_features.mat",
        "trainset_txt_img_cat.list",
        "testset_txt_img_cat.list",
        "categories.list",
    }
    info = dataset_info(ds)
    assert info["chance_map"] == pytest.approx(0.108, abs=0.002)
    assert info["rows_without_labels"] == 0
    json.dumps(ds.meta, allow_nan=False)
    json.dumps(info, allow_nan=False)
    # row i of the test list pairs with row i of I_te: first test class from the list file
    first = (shared_data / "wiki" / "testset_txt_img_cat.list").read_text().split()[2]
    assert ds.labels[ds.splits["query"][0]].argmax() == int(first) - 1


@pytest.fixture(scope="module")
def flickr_roots(shared_data, tmp_path_factory):
    """Two data roots with the real LAll/YAll and a written 20,015-row XAll (v5 and v7.3)."""
    x = np.random.default_rng(0).random((20015, 8), dtype=np.float32)
    roots = {}
    for fmt in ("v5", "v73"):
        root = tmp_path_factory.mktemp(f"flickr_{fmt}")
        d = root / "mirflickr"
        d.mkdir()
        for f in ("mirflickr25k-lall.mat", "mirflickr25k-yall.mat"):
            os.symlink(shared_data / "mirflickr" / f, d / f)
        write_mat(d / "mirflickr25k-iall-vgg.mat", {"XAll": x}, fmt)
        roots[fmt] = root
    return roots, x


@pytest.mark.parametrize("fmt", ["v5", "v73"])
def test_mirflickr_real_labels(flickr_roots, fmt):
    roots, x = flickr_roots
    ds = load_dataset("flickr", data_root=roots[fmt], check_dims=False)
    assert ds.name == "mirflickr" and ds.n == 20015
    assert (ds.text_dim, ds.num_classes) == (1386, 24)
    np.testing.assert_array_equal(ds.image, x)  # v7.3 transposed back
    sizes = {k: v.size for k, v in ds.splits.items()}
    assert sizes == {"query": 2000, "train": 10000, "database": 18015}
    np.testing.assert_array_equal(ds.splits["query"], np.arange(2000))
    assert np.isin(ds.splits["train"], ds.splits["database"]).all()
    card = ds.labels.sum(1)
    assert card.min() == 1 and card.max() == 14 and card.mean() == pytest.approx(3.78, abs=0.01)
    assert ds.meta["rows_without_labels"] == 0
    # the declared 4096-d check fires on the 8-d file we wrote, naming file and variable
    with pytest.raises(DataError, match=r"mirflickr25k-iall-vgg\.mat:XAll: 8 dimensions.*4096"):
        load_dataset("mirflickr", data_root=roots[fmt])


# ---------------------------------------------------------------------------- other loaders (small files)


@pytest.mark.parametrize("fmt", ["v5", "v73"])
def test_nuswide_small_full_dims(tmp_path, fmt):
    rng = np.random.default_rng(1)
    n = 30
    arrays = {
        "XAll": rng.random((n, 4096), dtype=np.float32),
        "YAll": (rng.random((n, 1000)) < 0.01).astype(np.uint8),
        "LAll": np.eye(21, dtype=np.uint8)[rng.integers(0, 21, n)],
    }
    names = ("nus-wide-tc21-xall-vgg-clean.mat", "nus-wide-tc21-yall-clean.mat", "nus-wide-tc21-lall-clean.mat")
    d = tmp_path / "nuswide"
    d.mkdir()
    for (var, arr), fname in zip(arrays.items(), names):
        write_mat(d / fname, {var: arr}, fmt)
    ds = load_dataset("nus-wide", data_root=tmp_path, query_size=5, train_size=10)
    assert (ds.image_dim, ds.text_dim, ds.num_classes) == (4096, 1000, 21)
    np.testing.assert_array_equal(ds.image, arrays["XAll"])
    np.testing.assert_array_equal(ds.labels, arrays["LAll"])
    assert ds.meta["image_nonnegative"] is True


def test_iapr_concatenates_database_then_test(tmp_path):
    rng = np.random.default_rng(2)
    nd, nt = 12, 8

    def part(n):
        return (
            rng.random((n, 4096), dtype=np.float32),
            (rng.random((n, 2912)) < 0.01).astype(np.float32),
            np.eye(255, dtype=np.uint8)[rng.integers(0, 255, n)],
        )

    vd, yd, ld = part(nd)
    vt, yt, lt = part(nt)
    (tmp_path / "iapr").mkdir()
    scipy.io.savemat(
        tmp_path / "iapr" / "iapr-tc12-rand.mat",
        {"VDatabase": vd, "YDatabase": yd, "databaseL": ld, "VTest": vt, "YTest": yt, "testL": lt},
    )
    ds = load_dataset("iapr-tc12", data_root=tmp_path, query_size=4, train_size=6)
    assert ds.n == nd + nt and ds.num_classes == 255 and ds.text_dim == 2912
    np.testing.assert_array_equal(ds.image[:nd], vd)
    np.testing.assert_array_equal(ds.image[nd:], vt)
    np.testing.assert_array_equal(ds.labels[nd], lt[0])
    assert ds.meta["rows_database_part"] == nd


def test_coco_concatenates_train_then_test_negative_text_ok(tmp_path):
    rng = np.random.default_rng(3)
    d = tmp_path / "coco"
    d.mkdir()
    data = {}
    with h5py.File(d / "MSCOCO_deep_doc2vec_data.h5py", "w") as f:
        for part, n in (("train", 15), ("test", 6)):
            data[part] = (
                rng.random((n, 4096), dtype=np.float32),
                rng.standard_normal((n, 300)).astype(np.float32),
                (rng.random((n, 80)) < 0.05).astype(np.float64),
            )
            f[f"{part}_imgs_deep"], f[f"{part}_text"], f[f"{part}_imgs_labels"] = data[part]
    ds = load_dataset("ms-coco", data_root=tmp_path, query_size=3, train_size=8)
    assert ds.n == 21 and (ds.image_dim, ds.text_dim, ds.num_classes) == (4096, 300, 80)
    np.testing.assert_array_equal(ds.text[15:], data["test"][1])
    assert ds.text.min() < 0
    assert ds.meta["rows_without_labels"] == int((ds.labels.sum(1) == 0).sum())


def _write_nrch_h5(path, q=4, d=10, t=6, train_in_db=True, seed=4):
    rng = np.random.default_rng(seed)

    def part(n):
        return rng.random((n, 4096)), (rng.random((n, 1386)) < 0.01) * 1.0, np.eye(24)[rng.integers(0, 24, n)]

    parts = {"Query": part(q), "DataBase": part(d)}
    parts["Train"] = tuple(a[:t] for a in parts["DataBase"]) if train_in_db else part(t)
    with h5py.File(path, "w") as f:
        for suffix, (img, tag, lab) in parts.items():
            f[f"Img{suffix}"], f[f"Tag{suffix}"], f[f"Lab{suffix}"] = img, tag, lab
    return parts


@pytest.mark.parametrize("train_in_db", [True, False])
def test_nrch_prepared_h5(tmp_path, train_in_db):
    d = tmp_path / "nrch-h5"
    d.mkdir()
    parts = _write_nrch_h5(d / "MIRFlickr.h5", train_in_db=train_in_db)
    ds = load_dataset("nrch-h5", data_root=tmp_path)
    assert ds.meta["split_rule"] == "official" and ds.meta["nrch_h5_variant"] == "mirflickr"
    sizes = {k: v.size for k, v in ds.splits.items()}
    assert sizes == {"query": 4, "train": 6, "database": 10}
    np.testing.assert_allclose(ds.image[ds.splits["train"]], parts["Train"][0].astype(np.float32))
    np.testing.assert_array_equal(ds.labels[ds.splits["query"]], parts["Query"][2])
    assert ds.n == (14 if train_in_db else 20)
    assert np.isin(ds.splits["train"], ds.splits["database"]).all() == train_in_db
    if train_in_db:  # the nrch rule with the stored sizes reproduces the stored split
        nrch = load_dataset("nrch-h5", data_root=tmp_path, split="nrch")
        assert nrch.meta["split_checksum"] == ds.meta["split_checksum"]


def test_nrch_prepared_needs_variant_when_ambiguous(tmp_path):
    d = tmp_path / "nrch-h5"
    d.mkdir()
    _write_nrch_h5(d / "MIRFlickr.h5")
    _write_nrch_h5(d / "IAPR.h5")
    with pytest.raises(ConfigError, match="variant"):
        load_dataset("nrch-h5", data_root=tmp_path)
    assert load_dataset("nrch-h5", data_root=tmp_path, variant="mirflickr").n == 14


def test_generic_npz_with_stored_split_and_directory_argument(tmp_path):
    rng = np.random.default_rng(5)
    n = 50
    labels = (rng.random((n, 4)) < 0.4).astype(np.uint8)
    labels[:, 0] = 1
    labels[3] = 0  # a row without labels: kept and counted
    np.savez(
        tmp_path / "data.npz",
        image=rng.random((n, 7)),
        text=rng.random((n, 3)),
        labels=labels,
        class_names=np.array(["a", "b", "c", "d"]),
        query=np.arange(10),
        train=np.arange(10, 30),
    )
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "mine", "version": "2"}))
    ds = load_dataset(tmp_path)
    assert ds.name == "generic" and ds.meta["split_rule"] == "official" and ds.meta["version"] == "2"
    assert ds.meta["name"] == "mine" and ds.class_names == ["a", "b", "c", "d"]
    assert ds.splits["database"].size == 40  # every row not in query
    assert ds.meta["rows_without_labels"] == 1 and ds.meta["rows_without_labels_by_split"]["query"] == 1
    ds2 = load_dataset(str(tmp_path), split="random", split_seed=3)
    assert ds2.meta["split_rule"] == "random" and ds2.splits["query"].size == 5  # 10% default


def test_generic_h5_with_split_files(tmp_path):
    rng = np.random.default_rng(6)
    n = 30
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["image"] = rng.random((n, 6), dtype=np.float32)
        f["text"] = rng.random((n, 5), dtype=np.float32)
        f["labels"] = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, n)]
        f["class_names"] = np.array([b"x", b"y", b"z"])
    (tmp_path / "query.txt").write_text("\n".join(map(str, range(5))))
    (tmp_path / "train.txt").write_text("\n".join(map(str, range(5, 20))))
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["x", "y", "z"] and ds.image.shape == (30, 6)
    assert ds.splits["train"].size == 15 and "train.txt" in ds.meta["source_checksums"]


# ---------------------------------------------------------------------------- validation errors


def test_missing_file_says_where_and_how(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("mirflickr", data_root=tmp_path)
    msg = str(e.value)
    assert "mirflickr25k-iall-vgg.mat" in msg and str(tmp_path) in msg
    assert "--data-root" in msg and "NRCHBENCH_DATA" in msg and "UCCH" in msg and "\n" not in msg
    small_triple(tmp_path / "mirflickr")
    (tmp_path / "mirflickr" / "mirflickr25k-yall.mat").unlink()
    with pytest.raises(DataError, match=r"missing mirflickr25k-yall\.mat in"):
        load_dataset("mirflickr", data_root=tmp_path, **SMALL)


@pytest.mark.parametrize("fmt", ["v5", "v73"])
def test_missing_variable_lists_present_ones(tmp_path, fmt):
    d = tmp_path / "mirflickr"
    small_triple(d, fmt=fmt)
    write_mat(d / "mirflickr25k-lall.mat", {"L": np.eye(5)}, fmt)
    with pytest.raises(DataError, match=r"mirflickr25k-lall\.mat: variable 'LAll' not found; the file has L"):
        load_dataset("mirflickr", data_root=tmp_path, **SMALL)


def test_row_count_mismatch_names_files(tmp_path):
    small_triple(tmp_path / "mirflickr", YAll=np.zeros((39, 12), dtype=np.float32))
    with pytest.raises(DataError, match=r"row count mismatch.*mirflickr25k-yall\.mat:YAll has 39 rows"):
        load_dataset("mirflickr", data_root=tmp_path, **SMALL)


def test_non_binary_labels(tmp_path):
    lab = np.zeros((40, 5))
    lab[:, 1] = 2
    small_triple(tmp_path / "mirflickr", LAll=lab)
    with pytest.raises(DataError, match=r"mirflickr25k-lall\.mat: variable 'LAll': labels must be 0/1.*2\.0"):
        load_dataset("mirflickr", data_root=tmp_path, **SMALL)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_features_name_row_count(tmp_path, bad):
    x = np.ones((40, 16), dtype=np.float32)
    x[[3, 7], 2] = bad
    small_triple(tmp_path / "mirflickr", XAll=x)
    with pytest.raises(DataError, match=r"iall-vgg\.mat:XAll: 2 of 40 rows contain NaN or Inf \(first at row 3\)"):
        load_dataset("mirflickr", data_root=tmp_path, **SMALL)


def test_wrong_dims_and_unknown_option(tmp_path):
    small_triple(tmp_path / "mirflickr")
    with pytest.raises(DataError, match=r"XAll: 16 dimensions, but dataset 'mirflickr' has 4096.*check_dims=False"):
        load_dataset("mirflickr", data_root=tmp_path, query_size=5, train_size=10)
    with pytest.raises(ConfigError, match=r"does not accept option.*bogus"):
        load_dataset("mirflickr", data_root=tmp_path, bogus=1, **SMALL)
    with pytest.raises(DataError, match=r"query 2000 \+ train 10000 ≤ 40"):
        load_dataset("mirflickr", data_root=tmp_path, check_dims=False)


def test_unknown_dataset_and_rule():
    with pytest.raises(RegistryError, match="did you mean 'wiki'"):
        load_dataset("wikk")
    with pytest.raises(ConfigError, match="unknown split rule 'foo'; available: contiguous, random, official"):
        load_dataset("synthetic", split="foo", n=600)
    with pytest.raises(ConfigError, match="no official split"):
        load_dataset("synthetic", split="official", n=600)


# ---------------------------------------------------------------------------- splits


def test_nrch_split_contiguous():
    s = make_splits(100, "nrch", sizes=(10, 30))
    np.testing.assert_array_equal(s["query"], np.arange(10))
    np.testing.assert_array_equal(s["train"], np.arange(10, 40))
    np.testing.assert_array_equal(s["database"], np.arange(10, 100))
    assert all(v.dtype == np.int64 for v in s.values())


def test_random_split_deterministic_and_disjoint():
    a = make_splits(200, "random", sizes=(20, 50), seed=1)
    b = make_splits(200, "random", sizes=(20, 50), seed=1)
    c = make_splits(200, "random", sizes=(20, 50), seed=2)
    assert split_checksums(a) == split_checksums(b) and split_checksums(a)[0] != split_checksums(c)[0]
    assert not np.intersect1d(a["query"], a["database"]).size
    assert np.isin(a["train"], a["database"]).all()
    assert np.union1d(a["query"], a["database"]).size == 200


@pytest.mark.parametrize("rule", ["nrch", "random"])
def test_val_from_database_not_train_not_query(rule):
    s = make_splits(300, rule, sizes=(30, 100), seed=3, val_size=40)
    assert s["val"].size == 40 and s["database"].size == 270 - 40
    assert not np.intersect1d(s["val"], s["query"]).size
    assert not np.intersect1d(s["val"], s["train"]).size
    assert not np.intersect1d(s["val"], s["database"]).size
    assert s["train"].size == 100 and np.isin(s["train"], s["database"]).all()
    again = make_splits(300, rule, sizes=(30, 100), seed=3, val_size=40)
    np.testing.assert_array_equal(s["val"], again["val"])


def test_val_when_database_equals_train_and_fraction():
    s = {"query": np.arange(10), "train": np.arange(10, 50), "database": np.arange(10, 50)}
    v = carve_val(s, 0.25, seed=0)
    assert v["val"].size == 10 and v["train"].size == 30 and v["database"].size == 30
    assert not np.intersect1d(v["val"], v["train"]).size and not np.intersect1d(v["val"], v["query"]).size
    with pytest.raises(ConfigError, match="val_size"):
        carve_val(s, -1)


def test_split_checksums_in_meta():
    ds = load_dataset("synthetic", n=600, split="random", split_seed=4, val_size=20)
    total, per = split_checksums(ds.splits)
    assert ds.meta["split_checksum"] == total and ds.meta["split_checksums"] == per
    assert set(per) == {"query", "train", "database", "val"}
    assert ds.meta["sizes"]["val"] == 20


# ---------------------------------------------------------------------------- synthetic


def test_synthetic_deterministic_and_stats():
    t0 = time.perf_counter()
    a = get_loader("synthetic").read(None)  # type: ignore[arg-type]
    gen_time = time.perf_counter() - t0
    assert gen_time < 5  # < 1 s on an idle core; CI cores are shared
    b = get_loader("synthetic").read(None)  # type: ignore[arg-type]
    for key in ("image", "text", "labels"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    c = get_loader("synthetic").read(None, {"seed": 1})  # type: ignore[arg-type]
    assert not np.array_equal(a.labels, c.labels)
    assert a.image.shape == (12000, 512) and a.text.shape == (12000, 1000) and a.labels.shape == (12000, 24)
    card = a.labels.sum(1)
    assert card.min() >= 1 and 2.5 <= card.mean() <= 3.8 and card.max() > 5
    assert a.image.min() >= 0 and a.image.dtype == np.float32
    assert set(np.unique(a.text)) == {0.0, 1.0} and a.text.sum(1).min() >= 1


def test_synthetic_tiny_and_default():
    ds = load_dataset("synthetic", n=600, seed=7)
    assert {k: v.size for k, v in ds.splits.items()} == {"query": 50, "train": 250, "database": 550}
    info = dataset_info(ds)
    assert info["multi_label"] and 0.2 < info["chance_map"] < 0.6
    assert ds.meta["options"] == {"n": 600, "seed": 7} and ds.meta["source_checksums"] == {}


# ---------------------------------------------------------------------------- registry, info


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("flickr", "mirflickr"),
        ("nus-wide", "nuswide"),
        ("ms-coco", "coco"),
        ("iapr-tc12", "iapr"),
        ("wikipedia", "wiki"),
    ],
)
def test_aliases(alias, name):
    assert DATASETS.canonical(alias) == name
    assert get_loader(alias).name == name


def test_every_builtin_loader_is_registered_and_described():
    names = {"synthetic", "mirflickr", "nuswide", "iapr", "coco", "wiki", "nrch-h5", "generic"}
    assert names <= set(DATASETS.names())
    for name in names:
        loader = get_loader(name)
        assert loader.name == name and loader.description
        assert loader.default_split in ("contiguous", "random", "official")


def test_chance_map_matches_naive_loop():
    rng = np.random.default_rng(8)
    q = (rng.random((17, 6)) < 0.3).astype(np.uint8)
    db = (rng.random((40, 6)) < 0.3).astype(np.uint8)
    naive = [((db @ row) > 0).mean() for row in q]
    naive_kept = [f for f in naive if f > 0]
    chance, no_rel = chance_map(q, db)
    assert chance == pytest.approx(np.mean(naive_kept)) and no_rel == len(naive) - len(naive_kept)


# ---------------------------------------------------------------------------- options (checked at resolve time)


def test_every_loader_declares_its_options_as_a_params_model():
    from nrchbench.datasets import DatasetOptions

    for name in DATASETS.names():
        opts = get_loader(name).Options
        assert issubclass(opts, DatasetOptions), name
        assert {"check_dims", "query_size", "train_size"} <= set(opts.model_fields)
    assert "n" in get_loader("synthetic").Options.model_fields
    assert {"variant", "file"} <= set(get_loader("nrch-h5").Options.model_fields)


def test_check_dataset_options_converts_and_stores_what_records_store():
    from golden_specs import SMALL

    from nrchbench.datasets import check_dataset_options

    # the golden specs' options (and so their run ids) are unchanged
    assert check_dataset_options("synthetic", SMALL) == SMALL
    got = check_dataset_options("synthetic", {"n": "600", "image_noise": 1, "word_prob": "0.5", "check_dims": "false"})
    assert got == {"n": 600, "image_noise": 1, "word_prob": 0.5, "check_dims": False}
    assert type(got["image_noise"]) is int  # an int for a float option stays as records stored it
    assert type(check_dataset_options("synthetic", {"n": 600.0})["n"]) is float  # equal: kept as given
    assert check_dataset_options("synthetic", {}) == {}
    assert check_dataset_options("wikipedia", {"query_size": 10}) == {"query_size": 10}
    assert check_dataset_options("nrch-h5", {"variant": "iapr"}) == {"variant": "iapr"}
    # what load_dataset records is the same dict
    ds = load_dataset("synthetic", n="600", image_dim=64.0, text_dim=200)
    assert ds.meta["options"] == {"image_dim": 64, "n": 600, "text_dim": 200}
    assert ds.meta["options"] == load_dataset("synthetic", **SMALL).meta["options"]


def test_check_dataset_options_one_line_errors(tmp_path):
    from nrchbench.datasets import check_dataset_options

    with pytest.raises(ConfigError, match=r"dataset 'synthetic' parameter 'n': input should be a valid integer.*'abc'"):
        check_dataset_options("synthetic", {"n": "abc"})
    with pytest.raises(ConfigError, match=r"does not accept option 'nn' \(did you mean n\?\); accepted: check_dims"):
        check_dataset_options("synthetic", {"nn": 600})
    with pytest.raises(ConfigError, match=r"'n': input should be greater than or equal to 20"):
        check_dataset_options("synthetic", {"n": 5})
    with pytest.raises(ConfigError, match=r"need 1 ≤ mean_labels ≤ max_labels ≤ classes"):
        check_dataset_options("synthetic", {"mean_labels": 5, "max_labels": 3})
    with pytest.raises(ConfigError, match=r"query 900 \+ train 250 > n 1000"):
        check_dataset_options("synthetic", {"n": 1000, "query": 900, "train": 250})
    with pytest.raises(ConfigError, match=r"'variant': input should be 'mirflickr', 'nuswide', 'coco' or 'iapr'"):
        check_dataset_options("nrch-h5", {"variant": "flickr"})
    with pytest.raises(ConfigError, match=r"option 'random_words': expected a finite number, got inf"):
        check_dataset_options("synthetic", {"random_words": float("inf")})
    with pytest.raises(ConfigError, match=r"dataset 'generic' does not accept option 'n'"):
        check_dataset_options(tmp_path, {"n": 600})  # a directory is the generic format
    with pytest.raises(RegistryError):
        check_dataset_options("wikk", {})
    for bad in ({"n": "abc"}, {"nn": 1}):  # load_dataset refuses the same way
        with pytest.raises(ConfigError):
            load_dataset("synthetic", **bad)


# ---------------------------------------------------------------------------- overlapping splits, malformed generic data


def _generic(directory, n=30, **arrays):
    rng = np.random.default_rng(1)
    base = {
        "image": rng.random((n, 4)),
        "text": rng.random((n, 3)),
        "labels": np.eye(3, dtype=np.uint8)[rng.integers(0, 3, n)],
    }
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "data.npz", **{**base, **arrays})
    return directory


@pytest.mark.parametrize(
    ("stored", "pair"),
    [
        ({"query": np.arange(5), "train": np.arange(3, 20)}, "'query' and 'train'"),
        ({"query": np.arange(5), "train": np.arange(5, 20), "database": np.arange(4, 30)}, "'query' and 'database'"),
        ({"query": np.arange(5), "train": np.arange(5, 20), "val": np.arange(2, 3)}, "'query' and 'val'"),
    ],
)
def test_overlapping_stored_splits_are_refused(tmp_path, stored, pair):
    d = _generic(tmp_path / "g", **stored)
    with pytest.raises(DataError) as e:
        load_dataset(d)
    msg = str(e.value)
    assert pair in msg and "data.npz:query" in msg and "\n" not in msg
    (d / "data.npz").unlink()
    _generic(d)  # the same overlap through split files
    for k, v in stored.items():
        (d / f"{k}.txt").write_text("\n".join(map(str, v)))
    with pytest.raises(DataError, match=pair):
        load_dataset(d)


def test_split_rules_stay_disjoint_and_the_check_is_a_declared_choice():
    from nrchbench.datasets.splits import check_disjoint

    for rule in ("nrch", "random"):
        s = make_splits(100, rule, sizes=(10, 30), val_size=5)
        check_disjoint(s)
    s = {"query": np.arange(5), "train": np.arange(5, 20), "database": np.arange(0, 30)}
    with pytest.raises(DataError, match="a query would retrieve itself"):
        check_disjoint(s, dataset="x")
    check_disjoint(s, dataset="x", query_in_database=True)  # a format that allows it
    assert all(not get_loader(name).query_in_database for name in DATASETS.names())


def test_split_index_out_of_range_names_file_and_variable(tmp_path):
    d = _generic(tmp_path / "g", query=np.arange(5), train=np.arange(5, 45))
    with pytest.raises(DataError, match=r"g/data\.npz:train: split 'train' has 15 of 40 indices outside \[0, 30\)"):
        load_dataset(d)
    d = _generic(tmp_path / "m", query=np.arange(30) < 3, train=np.arange(5, 20))
    with pytest.raises(DataError, match=r"data\.npz:query: a boolean mask"):
        load_dataset(d)
    d = _generic(tmp_path / "f", query=np.array([0.5, 1.0]), train=np.arange(5, 20))
    with pytest.raises(DataError, match=r"data\.npz:query: non-integer values"):
        load_dataset(d)
    d = _generic(tmp_path / "i", query=np.array([0.0, 1.0]), train=np.arange(5, 20))
    np.testing.assert_array_equal(load_dataset(d).splits["query"], [0, 1])  # MATLAB-style doubles are fine


def test_malformed_generic_files_name_file_and_variable(tmp_path):
    (tmp_path / "zip").mkdir()
    (tmp_path / "zip" / "data.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"zip/data\.npz: not a zip archive, so not an \.npz file"):
        load_dataset(tmp_path / "zip")
    d = _generic(tmp_path / "str", image=np.array([["a", "b"]] * 30))
    with pytest.raises(DataError, match=r"str/data\.npz:image: a <U1 array .*expected numbers"):
        load_dataset(d)
    d = _generic(tmp_path / "obj", text=np.array([[1, "x"]] * 30, dtype=object))
    with pytest.raises(DataError, match=r"obj/data\.npz:text: holds Python objects \(dtype object\)"):
        load_dataset(d)
    (tmp_path / "h5").mkdir()
    with h5py.File(tmp_path / "h5" / "data.h5", "w") as f:
        f["image"] = np.array([[b"a", b"b"]] * 4)
        f["text"] = np.zeros((4, 2))
        f["labels"] = np.eye(2)[[0, 1, 0, 1]]
    with pytest.raises(DataError, match=r"h5/data\.h5: variable 'image' is a \|S1 array, expected a numeric matrix"):
        load_dataset(tmp_path / "h5")


def test_empty_and_tiny_datasets_say_what_is_wrong_in_words(tmp_path):
    d = _generic(tmp_path / "e", n=0)
    with pytest.raises(DataError, match=r"e/data\.npz:image: the dataset has no rows"):
        load_dataset(d)
    d = _generic(tmp_path / "one", n=1)
    with pytest.raises(DataError, match=r"has 1 row: too few to split into a query row and a training row"):
        load_dataset(d)
    with pytest.raises(DataError, match=r"needs at least one query row and one training row.*train 0 of 2"):
        make_splits(2, "nrch", sizes=(2, 0), dataset="d")


def test_generic_manifest_is_checked_and_round_trips(tmp_path):
    from nrchbench.datasets.generic_format import read_manifest, write_manifest

    d = _generic(tmp_path / "g")
    write_manifest(d, {"name": "mine", "n": 30, "image_dim": 4, "query_size": 3, "provenance": {"tool": "x"}})
    m = read_manifest(d)
    assert m.to_dict() == {
        "format": "nrchbench-generic",
        "format_version": 1,
        "name": "mine",
        "n": 30,
        "image_dim": 4,
        "query_size": 3,
        "provenance": {"tool": "x"},
    }
    ds = load_dataset(d)
    assert ds.meta["name"] == "mine" and ds.splits["query"].size == 3
    with pytest.raises(
        DataError, match=r"manifest\.json: field 'query_size': input should be greater than or equal to 1"
    ):
        write_manifest(d, {"query_size": 0})
    (d / "manifest.json").write_text(json.dumps({"text_dim": 5}))
    with pytest.raises(DataError, match=r"manifest\.json: text_dim is 5 but .*data\.npz:text has 3 columns"):
        load_dataset(d)
    (d / "manifest.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"manifest\.json: expected a JSON object"):
        load_dataset(d)
