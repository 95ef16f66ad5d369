"""mixup_core.data: readers on files written in the real on-disk formats, carving, info."""

from __future__ import annotations

import gzip
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

from mixup_core.config import DataConfig, SyntheticConfig
from mixup_core.data import (
    corrupt_labels,
    dataset_info,
    load_dataset,
    random_crop_flip,
    stratified_split,
    stratified_subset,
)
from mixup_core.data.idx import read_idx
from mixup_core.data.registry import IMAGE_STATS
from mixup_core.errors import DatasetNotFound, InvalidConfig

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


# --- writers of the real formats ------------------------------------------------------------


def _write_cifar(root: Path, name: str, n_train: int = 20, n_test: int = 10) -> dict[str, np.ndarray]:
    """Tiny CIFAR in torchvision's layout; returns the arrays written, (N, 3072) uint8 rows."""
    rng = np.random.default_rng(1)
    classes = 10 if name == "cifar10" else 100
    arrays: dict[str, np.ndarray] = {
        "train_x": rng.integers(0, 256, (n_train, 3072), dtype=np.uint8),
        "train_y": np.arange(n_train) % 10,  # 2 per class for 20 (CIFAR-100 uses 10 of its classes)
        "test_x": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
        "test_y": (np.arange(n_test) * 7) % classes,
    }
    if name == "cifar10":
        folder, key = root / "cifar-10-batches-py", b"labels"
        splits = {f"data_batch_{i + 1}": slice(i * n_train // 5, (i + 1) * n_train // 5) for i in range(5)}
        files = {f: ("train", s) for f, s in splits.items()} | {"test_batch": ("test", slice(None))}
    else:
        folder, key = root / "cifar-100-python", b"fine_labels"
        files = {"train": ("train", slice(None)), "test": ("test", slice(None))}
    folder.mkdir(parents=True)
    for fname, (split, sl) in files.items():
        batch = {
            b"batch_label": fname.encode(),
            key: [int(v) for v in arrays[f"{split}_y"][sl]],  # lists of ints, as in the originals
            b"data": arrays[f"{split}_x"][sl],
            b"filenames": [b"img.png"] * len(arrays[f"{split}_y"][sl]),
        }
        with (folder / fname).open("wb") as f:
            pickle.dump(batch, f, protocol=2)
    return arrays


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write_idx_set(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in arrays.items():
        data = _idx_bytes(arr)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


def _normalised(pixel: int, name: str, channel: int) -> float:
    mean, std = IMAGE_STATS[name]
    return (pixel / 255 - mean[channel]) / std[channel]


# --- CIFAR ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_torchvision_format(tmp_path: Path, name: str) -> None:
    arrays = _write_cifar(tmp_path, name)
    d = load_dataset(DataConfig(name=name, data_dir=tmp_path, download=False))
    assert d.train_x.shape == (20, 3, 32, 32)
    assert d.test_x.shape == (10, 3, 32, 32)
    assert d.train_x.dtype == torch.float32
    assert d.train_x.is_contiguous()
    assert d.train_y.dtype == torch.int64
    assert d.num_classes == (10 if name == "cifar10" else 100)
    assert d.augment is True
    assert d.val_x is None
    assert d.noisy is None
    assert d.train_y.tolist() == arrays["train_y"].tolist()
    assert d.test_y.tolist() == arrays["test_y"].tolist()
    # Sample 7, channel 1 (G), row 5, column 9 sits at column 1024 + 5·32 + 9 of the row.
    raw = int(arrays["train_x"][7, 1024 + 5 * 32 + 9])
    assert d.train_x[7, 1, 5, 9].item() == pytest.approx(_normalised(raw, name, 1), abs=1e-5)
    raw_test = int(arrays["test_x"][3, 2 * 1024])
    assert d.test_x[3, 2, 0, 0].item() == pytest.approx(_normalised(raw_test, name, 2), abs=1e-5)
    assert d.mean == IMAGE_STATS[name][0]
    assert d.std == IMAGE_STATS[name][1]
    assert d.pad_fill is not None
    assert torch.allclose(d.pad_fill, torch.tensor([_normalised(0, name, c) for c in range(3)]))


def test_augment_with_pad_fill_equals_pad_black_then_normalise(tmp_path: Path) -> None:
    """torchvision pads raw (black) pixels before Normalize; pad_fill reproduces that."""
    arrays = _write_cifar(tmp_path, "cifar10")
    d = load_dataset(DataConfig(name="cifar10", data_dir=tmp_path, download=False))
    out = random_crop_flip(d.train_x[:8], torch.Generator().manual_seed(0), padding=4, fill=d.pad_fill)
    mean, std = IMAGE_STATS["cifar10"]
    raw = torch.from_numpy(arrays["train_x"][:8].reshape(8, 3, 32, 32))
    padded = TF.normalize(TF.pad(raw, [4], fill=0).float() / 255, list(mean), list(std))  # (8, 3, 40, 40)
    for i in range(8):
        windows = [padded[i, :, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        candidates = windows + [w.flip(-1) for w in windows]
        assert any(torch.allclose(out[i], c, atol=1e-5) for c in candidates), i


def test_cifar_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match="cifar-10-batches-py") as info:
        load_dataset(DataConfig(name="cifar10", data_dir=tmp_path / "x", download=False))
    assert str(tmp_path / "x" / "cifar-10-batches-py") in str(info.value)
    assert "data_batch_1" in str(info.value)
    with pytest.raises(DatasetNotFound, match="cifar-100-python"):
        load_dataset(DataConfig(name="cifar100", data_dir=tmp_path, download=False))


def test_cifar_failed_download_is_dataset_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils

    seen: list[float | None] = []

    def offline(*args: object, **kwargs: object) -> None:
        seen.append(socket.getdefaulttimeout())  # the bounded timeout is in force here
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", offline)
    before = socket.getdefaulttimeout()
    with pytest.raises(DatasetNotFound, match="network unreachable"):
        load_dataset(DataConfig(name="cifar10", data_dir=tmp_path, download=True))
    assert seen
    assert seen[0] is not None
    assert seen[0] > 0
    assert socket.getdefaulttimeout() == before


def test_cifar_corrupt_batch(tmp_path: Path) -> None:
    _write_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(InvalidConfig, match="data_batch_3"):
        load_dataset(DataConfig(name="cifar10", data_dir=tmp_path, download=False))


def test_cifar_subset_larger_than_files(tmp_path: Path) -> None:
    _write_cifar(tmp_path, "cifar10")
    with pytest.raises(InvalidConfig, match=r"train_subset: 30 exceeds the 20"):
        load_dataset(DataConfig(name="cifar10", data_dir=tmp_path, download=False, train_subset=30))


# --- IDX (MNIST / Fashion-MNIST) ------------------------------------------------------------


def test_mnist_from_gzipped_idx(tmp_path: Path) -> None:
    arrays = _write_idx_set(tmp_path / "mnist")
    d = load_dataset(DataConfig(name="mnist", data_dir=tmp_path, download=False))
    assert d.train_x.shape == (30, 1, 28, 28)
    assert d.test_x.shape == (10, 1, 28, 28)
    assert d.augment is False
    assert d.num_classes == 10
    raw = int(arrays["train-images-idx3-ubyte"][4, 10, 20])
    assert d.train_x[4, 0, 10, 20].item() == pytest.approx(_normalised(raw, "mnist", 0), abs=1e-5)
    assert d.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_single_channel_images_keep_the_default_layout(tmp_path: Path) -> None:
    # One channel makes torch's layout ambiguous: with the channel axis' stride 1 (NumPy's, for an added axis)
    # a batch cut from the dataset would run a plain NCHW model in channels_last without anyone asking.
    _write_idx_set(tmp_path / "mnist")
    d = load_dataset(DataConfig(name="mnist", data_dir=tmp_path, download=False))
    assert d.train_x.stride() == (784, 784, 28, 1)
    assert d.test_x.stride() == (784, 784, 28, 1)
    conv = torch.nn.Conv2d(1, 4, 3)
    assert conv(d.train_x[torch.tensor([0, 3])]).is_contiguous()  # NCHW in, NCHW out


def test_mnist_plain_files_in_torchvision_layout(tmp_path: Path) -> None:
    arrays = _write_idx_set(tmp_path / "MNIST" / "raw", gz=False)
    d = load_dataset(DataConfig(name="mnist", data_dir=tmp_path, download=False))
    assert d.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_idx_corrupt_magic_and_truncation(tmp_path: Path) -> None:
    _write_idx_set(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    data = gzip.decompress(bad.read_bytes())
    bad.write_bytes(gzip.compress(struct.pack(">I", 2049) + data[4:]))  # a labels magic on images
    with pytest.raises(InvalidConfig, match=r"magic number 2049 \(expected 2051\)"):
        load_dataset(DataConfig(name="mnist", data_dir=tmp_path, download=False))
    bad.write_bytes(gzip.compress(data[:-5]))
    with pytest.raises(InvalidConfig, match="corrupt or truncated"):
        read_idx(bad, 2051)
    bad.write_bytes(b"\x12\x34\x56\x78garbage")
    with pytest.raises(InvalidConfig, match="not an IDX file"):
        read_idx(bad)


def test_mnist_missing_lists_searched_paths(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound) as info:
        load_dataset(DataConfig(name="mnist", data_dir=tmp_path, download=False))
    message = str(info.value)
    for path in (tmp_path / "mnist", tmp_path / "MNIST" / "raw", tmp_path):
        assert repr(str(path)) in message


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian's fashion-mnist files are not installed")
def test_real_fashion_mnist(tmp_path: Path) -> None:
    config = DataConfig(name="fashion_mnist", data_dir=tmp_path, download=False)  # falls back to FASHION_DIR
    d = load_dataset(config)
    assert d.train_x.shape == (60000, 1, 28, 28)
    assert d.test_x.shape == (10000, 1, 28, 28)
    assert d.num_classes == 10
    assert torch.bincount(d.train_y).tolist() == [6000] * 10
    assert abs(d.train_x.mean().item()) < 0.02
    info = dataset_info(config)
    assert (info.input_shape, info.num_classes, info.train_size) == ((1, 28, 28), 10, 60000)


# --- UCI --------------------------------------------------------------------------------------

UCI = {
    "uci:iris": (150, 4, 3),
    "uci:wine": (178, 13, 3),
    "uci:breast_cancer": (569, 30, 2),
    "uci:digits": (1797, 64, 10),
}


@pytest.mark.parametrize("name", list(UCI))
def test_uci_sizes_standardised_stratified(name: str) -> None:
    total, features, classes = UCI[name]
    d = load_dataset(DataConfig(name=name, split_seed=3))
    n_test = round(0.2 * total)
    assert d.train_x.shape == (total - n_test, features)
    assert d.test_x.shape == (n_test, features)
    assert d.num_classes == classes
    assert d.mean is None
    assert d.pad_fill is None
    varying = d.train_x.std(dim=0) > 0.5  # digits has constant (all-zero) border pixels
    assert varying.sum() >= features - 10
    assert torch.allclose(d.train_x.mean(dim=0), torch.zeros(features), atol=1e-4)
    assert torch.allclose(d.train_x.std(dim=0)[varying], torch.ones(int(varying.sum())), atol=1e-4)
    all_y = torch.cat([d.train_y, d.test_y])
    counts = torch.bincount(all_y, minlength=classes).double()
    test_counts = torch.bincount(d.test_y, minlength=classes).double()
    assert torch.all((test_counts - 0.2 * counts).abs() < 1.0 + 1e-9)


def test_uci_split_reproducible_and_seeded() -> None:
    a = load_dataset(DataConfig(name="uci:wine", split_seed=1))
    b = load_dataset(DataConfig(name="uci:wine", split_seed=1, augment=False))  # equal data, other cache key
    c = load_dataset(DataConfig(name="uci:wine", split_seed=2))
    assert a is not b
    assert torch.equal(a.test_x, b.test_x)
    assert torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.test_y, c.test_y) or not torch.equal(a.test_x, c.test_x)


def test_uci_standardize_false_keeps_raw_features() -> None:
    # Iris as scikit-learn ships it: petal length runs 1.0-6.9 cm. Same split either way.
    from sklearn.datasets import load_iris

    raw = load_dataset(DataConfig(name="uci:iris", split_seed=4, standardize=False))
    std = load_dataset(DataConfig(name="uci:iris", split_seed=4))
    x, _ = load_iris(return_X_y=True)
    assert torch.equal(raw.train_y, std.train_y)
    assert torch.equal(raw.test_y, std.test_y)
    assert float(raw.train_x[:, 2].min()) >= 1.0 - 1e-6
    assert float(raw.train_x[:, 2].max()) <= 6.9 + 1e-6
    # every raw row is a row of the file, unchanged; the standardised rows are its affine image
    file_rows = {tuple(np.round(r, 4)) for r in x.astype(np.float32)}
    assert all(tuple(np.round(r, 4)) in file_rows for r in raw.test_x.numpy())
    mu, sigma = raw.train_x.mean(dim=0), raw.train_x.std(dim=0)
    assert torch.allclose((raw.test_x - mu) / sigma, std.test_x, atol=1e-5)


def test_standardize_false_only_for_uci() -> None:
    with pytest.raises(ValueError, match=r"standardize=False is for uci:\* datasets only, got name='synthetic'"):
        DataConfig(name="synthetic", standardize=False)


# --- carving: pure functions ---------------------------------------------------------------


def test_stratified_subset_exact_size_and_counts() -> None:
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])  # N = 100
    idx = stratified_subset(labels, 37, np.random.default_rng(0))
    assert len(idx) == 37
    assert len(np.unique(idx)) == 37
    counts = np.bincount(labels[idx], minlength=4)
    assert np.all(np.abs(counts - 37 * np.array([50, 30, 15, 5]) / 100) < 1)
    again = stratified_subset(labels, 37, np.random.default_rng(0))
    other = stratified_subset(labels, 37, np.random.default_rng(1))
    assert np.array_equal(idx, again)
    assert not np.array_equal(idx, other)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=2, max_size=8).filter(lambda s: sum(s) > 0),
    share=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_stratified_subset_property(sizes: list[int], share: float, seed: int) -> None:
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(sizes)), sizes))
    n = round(share * len(labels))
    idx = stratified_subset(labels, n, np.random.default_rng(seed))
    assert len(idx) == n
    assert len(np.unique(idx)) == n
    counts = np.bincount(labels[idx], minlength=len(sizes))
    assert np.all(np.abs(counts - n * np.array(sizes) / len(labels)) < 1 + 1e-9)


def test_stratified_split_disjoint() -> None:
    labels = np.arange(90) % 3
    kept, held = stratified_split(labels, 30, np.random.default_rng(5))
    assert len(held) == 30
    assert len(kept) == 60
    assert set(kept.tolist()).isdisjoint(held.tolist())
    assert sorted([*kept.tolist(), *held.tolist()]) == list(range(90))
    assert np.bincount(labels[held]).tolist() == [10, 10, 10]


def test_label_noise_exact_and_seeded() -> None:
    clean = np.arange(1000) % 10
    noisy_y, mask = corrupt_labels(clean, 0.35, 10, np.random.default_rng(4))
    assert mask.sum() == 350
    assert np.array_equal(noisy_y != clean, mask)
    again, mask2 = corrupt_labels(clean, 0.35, 10, np.random.default_rng(4))
    assert np.array_equal(noisy_y, again)
    assert np.array_equal(mask, mask2)
    # The wrong class is spread over the other classes (not a fixed shift).
    shifts = (noisy_y[mask] - clean[mask]) % 10
    assert set(shifts.tolist()) == set(range(1, 10))
    with pytest.raises(ValueError, match="fraction"):
        corrupt_labels(clean, 1.0, 10, np.random.default_rng(0))


def test_uniform_label_noise_is_the_papers_definition() -> None:
    # 40 % of 10,000 labels replaced by a class drawn from all 10: ~1/10 of the 4,000 land on the true class,
    # so ~3,600 are wrong (binomial sd 19), where flip makes exactly 4,000 wrong.
    clean = np.arange(10_000) % 10
    uniform_y, wrong = corrupt_labels(clean, 0.4, 10, np.random.default_rng(7), mode="uniform")
    assert np.array_equal(uniform_y != clean, wrong)
    assert 3_500 <= wrong.sum() <= 3_700
    # The same draws by hand: 4,000 distinct positions, then one class per position from all 10.
    rng = np.random.default_rng(7)
    chosen = rng.choice(10_000, size=4_000, replace=False)
    expected = clean.copy()
    expected[chosen] = rng.integers(0, 10, size=4_000)
    assert np.array_equal(uniform_y, expected)
    # Replaced labels are uniform over all classes: each class gets ~400 of them, whatever the true class.
    assert np.bincount(uniform_y[chosen], minlength=10).min() > 330
    _, flipped = corrupt_labels(clean, 0.4, 10, np.random.default_rng(7), mode="flip")
    assert flipped.sum() == 4_000
    with pytest.raises(ValueError, match="mode"):
        corrupt_labels(clean, 0.4, 10, np.random.default_rng(7), mode="random")  # type: ignore[arg-type]


def test_label_noise_mode_in_the_config() -> None:
    # Default flip: what label_noise meant before the mode existed, so stored specs keep their labels.
    base = DataConfig(name="synthetic", synthetic=SyntheticConfig(num_train=1000, num_classes=4), label_noise=0.4)
    assert base.label_noise_mode == "flip"
    flip = load_dataset(base)
    uniform = load_dataset(base.model_copy(update={"label_noise_mode": "uniform"}))
    assert flip.noisy is not None and uniform.noisy is not None
    assert int(flip.noisy.sum()) == 400
    # 4 classes: ~1/4 of the 400 replaced labels land on the true class -> ~300 wrong (sd 8.7).
    assert 260 <= int(uniform.noisy.sum()) <= 340
    clean = load_dataset(base.model_copy(update={"label_noise": 0.0}))
    assert torch.equal(clean.train_y != uniform.train_y, uniform.noisy)
    with pytest.raises(ValueError, match="label_noise_mode"):
        DataConfig(name="synthetic", label_noise_mode="random")


@settings(max_examples=80, deadline=None)
@given(p=st.floats(0, 0.95), n=st.integers(1, 400), classes=st.integers(2, 12), seed=st.integers(0, 2**32))
def test_label_noise_property(p: float, n: int, classes: int, seed: int) -> None:
    clean = np.random.default_rng(seed).integers(0, classes, n)
    noisy_y, mask = corrupt_labels(clean, p, classes, np.random.default_rng(seed))
    assert mask.sum() == round(p * n)
    assert np.array_equal(noisy_y != clean, mask)
    assert noisy_y.min() >= 0
    assert noisy_y.max() < classes
    assert np.array_equal(clean, np.random.default_rng(seed).integers(0, classes, n))  # input untouched


# --- carving through load_dataset, synthetic, info -------------------------------------------


def test_synthetic_carving_order_and_validation() -> None:
    synthetic = SyntheticConfig(num_train=400, num_test=100, num_classes=4)
    config = DataConfig(
        name="synthetic", synthetic=synthetic, train_subset=200, validation_fraction=0.25, label_noise=0.1
    )
    d = load_dataset(config)
    assert d.train_x.shape == (150, 16)
    assert d.val_x is not None
    assert d.val_y is not None
    assert d.val_x.shape == (50, 16)
    # Disjoint rows (continuous random samples never coincide).
    assert torch.cdist(d.train_x, d.val_x).min() > 0
    # Stratified: 4 balanced classes of 50 in the subset, 12.5 each held out.
    assert sorted(torch.bincount(d.val_y).tolist()) == [12, 12, 13, 13]
    assert d.noisy is not None
    assert int(d.noisy.sum()) == 15
    clean = load_dataset(config.model_copy(update={"label_noise": 0.0}))
    assert torch.equal(clean.train_x, d.train_x)  # noise touches labels only
    assert torch.equal(clean.train_y != d.train_y, d.noisy)
    assert clean.val_y is not None
    assert torch.equal(clean.val_y, d.val_y)  # validation labels stay clean
    info = dataset_info(config)
    assert (info.input_shape, info.num_classes, info.train_size) == (d.input_shape, d.num_classes, d.train_size)


def test_synthetic_deterministic_and_linearly_separable() -> None:
    from sklearn.linear_model import LogisticRegression

    a = load_dataset(DataConfig(name="synthetic", split_seed=11))
    b = load_dataset(DataConfig(name="synthetic", split_seed=11, augment=False))
    c = load_dataset(DataConfig(name="synthetic", split_seed=12))
    assert torch.equal(a.train_x, b.train_x)
    assert not torch.equal(a.train_x, c.train_x)
    clf = LogisticRegression(max_iter=500).fit(a.train_x.numpy(), a.train_y.numpy())
    error = 1 - clf.score(a.test_x.numpy(), a.test_y.numpy())
    assert error < 0.08


def test_synthetic_images() -> None:
    config = DataConfig(name="synthetic", synthetic=SyntheticConfig(shape=(3, 8, 8)), augment=True)
    d = load_dataset(config)
    assert d.train_x.shape == (512, 3, 8, 8)
    assert d.augment is True
    assert d.pad_fill is not None
    assert torch.equal(d.pad_fill, torch.zeros(3))
    info = dataset_info(config)
    assert info.input_shape == (3, 8, 8)
    assert info.default_augment is False


def test_augment_on_vectors_rejected() -> None:
    with pytest.raises(InvalidConfig, match="augment"):
        load_dataset(DataConfig(name="uci:iris", augment=True))


@pytest.mark.parametrize(
    "config",
    [
        DataConfig(name="synthetic"),
        DataConfig(name="synthetic", synthetic=SyntheticConfig(num_train=90, num_classes=3), validation_fraction=0.1),
        DataConfig(name="uci:digits", train_subset=500, validation_fraction=0.2),
        DataConfig(name="uci:breast_cancer"),
    ],
)
def test_info_matches_loaded(config: DataConfig) -> None:
    d, info = load_dataset(config), dataset_info(config)
    assert (info.input_shape, info.num_classes, info.train_size) == (d.input_shape, d.num_classes, d.train_size)
    assert info.default_augment == d.augment


def test_info_matches_loaded_cifar(tmp_path: Path) -> None:
    _write_cifar(tmp_path, "cifar100")
    config = DataConfig(name="cifar100", data_dir=tmp_path, download=False, train_subset=20, validation_fraction=0.1)
    d, info = load_dataset(config), dataset_info(config)
    assert (info.input_shape, info.num_classes, info.train_size) == (d.input_shape, d.num_classes, d.train_size)
    assert info.train_size == 18
    assert info.default_augment is True
    assert dataset_info(DataConfig(name="cifar10")).train_size == 50000


def test_info_rejects_impossible_sizes() -> None:
    with pytest.raises(InvalidConfig, match=r"train_subset: 50001 exceeds the 50000"):
        dataset_info(DataConfig(name="cifar10", train_subset=50001))
    with pytest.raises(InvalidConfig, match=r"train_subset: 121 exceeds the 120"):
        dataset_info(DataConfig(name="uci:iris", train_subset=121))
    with pytest.raises(InvalidConfig, match="validation_fraction"):
        dataset_info(DataConfig(name="synthetic", train_subset=1, validation_fraction=0.5))


def test_memoised_per_config_and_device() -> None:
    config = DataConfig(name="synthetic", split_seed=5)
    a = load_dataset(config)
    assert load_dataset(config) is a
    assert load_dataset(DataConfig(name="synthetic", split_seed=5), torch.device("cpu")) is a
    assert load_dataset(config.model_copy(update={"split_seed": 6})) is not a
