"""Tests of pixloom.data: IDX/AMAT readers, checksums, downloads, binarization, folders, samples.

Tests that need the full MNIST files read them from ../shared/data/mnist next to the repository and
are skipped when that folder is absent. Nothing here touches the network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixloom.data import DATASETS, load_dataset, resolve_data_dir
from pixloom.data.base import DynamicallyBinarizedDataset
from pixloom.data.folder import split_positions
from pixloom.data.download import DownloadFailed, download_file
from pixloom.data.mnist import BINARIZE_BLOCK, binarize, parse_idx, read_amat, read_idx
from pixloom.errors import DataError

SHARED_MNIST = Path(__file__).parents[2] / "shared/data/mnist"
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def idx_bytes(array: np.ndarray) -> bytes:
    """An uncompressed IDX file holding the uint8 ``array``."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def assert_one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


@pytest.fixture
def no_network(monkeypatch):
    """Every download attempt fails at once, as on a machine without network."""
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


@pytest.fixture(scope="module")
def shared_mnist() -> Path:
    if not all((SHARED_MNIST / name).is_file() for name in MNIST_FILES):
        pytest.skip(f"full MNIST not available in {SHARED_MNIST}")
    return SHARED_MNIST


# ---------------------------------------------------------------------------------------------
# IDX and AMAT readers


@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_raw_and_gzip(tmp_path, compressed):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    data = idx_bytes(array)
    path = tmp_path / ("x.idx.gz" if compressed else "x.idx")
    path.write_bytes(gzip.compress(data) if compressed else data)
    result = read_idx(path)
    assert result.dtype == np.uint8 and result.shape == (2, 3, 5)
    np.testing.assert_array_equal(result, array)


@pytest.mark.parametrize("data, reason", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x02ab", "magic"),  # first byte must be zero
    (b"\x00\x00\x42\x01\x00\x00\x00\x02ab", "magic"),  # unknown type code
    (b"\x00\x00\x08\x01\x00\x00\x00\x03ab", "bytes"),  # header says 3 values, 2 follow
    (b"\x00\x00\x08\x01\x00\x00\x00\x01ab", "bytes"),  # trailing garbage
    (b"\x00\x00\x08\x02\x00\x00", "truncated"),
    (b"", "magic"),
])
def test_parse_idx_rejects_corrupt(data, reason):
    with pytest.raises(DataError, match="corrupt") as error:
        parse_idx(data, "x")
    assert reason in assert_one_line(error)


def test_read_idx_rejects_bad_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 4))))[:-10])
    with pytest.raises(DataError, match="corrupt gzip") as error:
        read_idx(path)
    assert_one_line(error)


def test_read_amat(tmp_path):
    rows = (np.random.default_rng(0).random((3, 784)) < 0.3).astype(np.uint8)
    path = tmp_path / "x.amat"
    path.write_text("\n".join(" ".join(map(str, row)) for row in rows) + "\n")
    images = read_amat(path)
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images.reshape(3, -1), rows)

    path.write_text("0 1 2\n")
    with pytest.raises(DataError, match="corrupt .amat"):
        read_amat(path)


def test_binarized_mnist_prefers_amat_files(tmp_path, no_network):
    for split, n in (("train", 4), ("valid", 2), ("test", 3)):
        (tmp_path / f"binarized_mnist_{split}.amat").write_text(("0 1 " * 392 + "\n") * n)
    valid = load_dataset("binarized-mnist", "valid", str(tmp_path))
    assert valid.images.shape == (2, 1, 28, 28) and valid.levels == 2 and valid.labels is None
    assert valid.images.float().mean() == 0.5
    assert not no_network


# ---------------------------------------------------------------------------------------------
# Checksums and downloads


def test_md5_check_rejects_wrong_file(tmp_path):
    # Well-formed IDX files under the official names, but not the official content.
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((5, 28, 28)))))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5)))
    with pytest.raises(DataError, match="MD5") as error:
        load_dataset("mnist", "train", str(tmp_path), download=False)
    assert "train-images-idx3-ubyte.gz" in assert_one_line(error)


def test_offline_download_fails_with_one_line_hint(tmp_path, no_network):
    root = tmp_path / "empty"
    with pytest.raises(DataError, match="download failed") as error:
        load_dataset("mnist", "train", str(root))
    message = assert_one_line(error)
    assert "data_dir" in message and "PIXLOOM_DATA" in message and str(root) in message
    assert no_network[0].startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")
    assert len(no_network) == 2  # both mirrors of the first file, then give up
    assert not any(path.is_file() for path in root.rglob("*"))  # no partial download left


def test_download_false_never_touches_network(tmp_path, no_network):
    for name in ("mnist", "fashion-mnist", "binarized-mnist"):
        with pytest.raises(DataError, match="download disabled") as error:
            load_dataset(name, "test", str(tmp_path), download=False)
        assert "data_dir" in assert_one_line(error)
    assert not no_network


def test_download_verifies_md5_and_renames_atomically(tmp_path, monkeypatch):
    good = gzip.compress(idx_bytes(np.arange(10)))
    served = {"https://a/f.gz": b"truncated or tampered", "https://b/f.gz": good}
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(served[url]))
    dest = tmp_path / "f.gz"
    download_file(["https://a/f.gz", "https://b/f.gz"], dest, hashlib.md5(good).hexdigest())
    assert dest.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["f.gz"]

    dest.unlink()
    with pytest.raises(DownloadFailed, match="MD5 mismatch"):
        download_file(["https://a/f.gz"], dest, hashlib.md5(good).hexdigest())
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Names, splits, data root


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXLOOM_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("PIXLOOM_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path / ".cache" / "pixloom"


@pytest.mark.parametrize("name, split, listed", [
    ("cifar", "train", "binarized-mnist"),
    ("mnist", "validation", "train, valid, test"),
    ("folder:", "train", "path"),
])
def test_unknown_name_or_split(name, split, listed):
    with pytest.raises(DataError) as error:
        load_dataset(name, split)
    assert listed in assert_one_line(error)


def test_dataset_listing_has_one_line_descriptions():
    assert {"mnist", "binarized-mnist", "fashion-mnist", "sample", "sample-binarized"} <= set(DATASETS)
    assert any(name.startswith("folder:") for name in DATASETS)
    assert all(info.summary and "\n" not in info.summary for info in DATASETS.values())


# ---------------------------------------------------------------------------------------------
# Embedded sample and binarization


def test_embedded_sample_loads_offline(no_network):
    for split, n in (("train", 6000), ("valid", 1000), ("test", 1000)):
        data = load_dataset("sample", split)
        assert data.images.shape == (n, 1, 28, 28) and data.images.dtype == torch.uint8
        assert data.levels == 256 and data.num_classes == 10
        assert data.labels.dtype == torch.int64 and set(data.labels.tolist()) == set(range(10))
        assert data.images.max() == 255
    assert not no_network


def test_sample_binarized_is_binary_deterministic_and_unbiased():
    gray = load_dataset("sample", "valid")
    first, second = load_dataset("sample-binarized", "valid"), load_dataset("sample-binarized", "valid")
    assert first.levels == 2 and set(first.images.unique().tolist()) == {0, 1}
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, gray.labels)
    expected = gray.images.double().mean() / 255
    assert abs(first.images.double().mean() - expected) < 0.003
    # Pixels are 1 with probability value / 255: always 0 on black, always 1 on white.
    assert (first.images[gray.images == 0] == 0).all() and (first.images[gray.images == 255] == 1).all()


def test_binarize_is_independent_of_where_it_starts():
    images = load_dataset("sample", "train").images[:, 0].numpy()[:3 * BINARIZE_BLOCK]
    whole = binarize(images, "train")
    np.testing.assert_array_equal(binarize(images[BINARIZE_BLOCK:], "train", BINARIZE_BLOCK),
                                  whole[BINARIZE_BLOCK:])
    assert not np.array_equal(binarize(images, "test"), whole)  # each file has its own streams


# ---------------------------------------------------------------------------------------------
# Image folders


def write_image(path: Path, size: tuple[int, int], mode: str, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3 if mode == "RGB" else 1))
    Image.fromarray(pixels.astype(np.uint8).squeeze()).save(path)  # mode L or RGB


def test_split_positions_rule():
    for n in (1, 2, 3, 19, 20, 40, 101):
        parts = split_positions(n)
        assert sorted(parts["train"] + parts["valid"] + parts["test"]) == list(range(n))
        assert len(parts["valid"]) == max(n // 20, 1 if n >= 2 else 0)
        assert len(parts["test"]) == n // 20
    assert [len(split_positions(40)[s]) for s in ("train", "valid", "test")] == [36, 2, 2]


def test_folder_grayscale_odd_sizes_split_and_corrupt_file(tmp_path, capsys):
    for i in range(39):
        write_image(tmp_path / f"sub{i % 2}" / f"img{i:02d}.png", (13 + i, 7 + 2 * i), "L", i)
    (tmp_path / "sub0" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "notes.txt").write_text("ignored")

    sizes = {}
    for split in ("train", "valid", "test"):
        data = load_dataset(f"folder:{tmp_path}", split)
        assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (1, 28, 28)
        assert data.levels == 256 and data.labels is None
        sizes[split] = len(data)
    assert sizes == {"train": 37, "valid": 1, "test": 1}  # 39 readable images: 39 // 20 = 1 each
    assert "skipped 1 unreadable image file(s)" in capsys.readouterr().err


def test_folder_mixed_modes_are_rgb_and_resized(tmp_path):
    write_image(tmp_path / "a.png", (9, 31), "L", 0)
    write_image(tmp_path / "b.jpg", (40, 17), "RGB", 1)
    write_image(tmp_path / "c.bmp", (5, 5), "L", 2)
    train = load_dataset(f"folder:{tmp_path}", "train", image_size=12)
    valid = load_dataset(f"folder:{tmp_path}", "valid", image_size=12)
    assert train.images.shape == (2, 3, 12, 12) and valid.images.shape == (1, 3, 12, 12)
    with pytest.raises(DataError, match="no images for split 'test'"):
        load_dataset(f"folder:{tmp_path}", "test")  # 3 images: 2 train, 1 valid, no test


def test_folder_with_split_subfolders(tmp_path):
    for split, n in (("train", 3), ("valid", 2), ("test", 1)):
        for i in range(n):
            write_image(tmp_path / split / f"{i}.png", (8, 8), "L", i)
    assert [len(load_dataset(f"folder:{tmp_path}", s)) for s in ("train", "valid", "test")] == [3, 2, 1]


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(f"folder:{tmp_path / 'missing'}", "train")
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="no readable images") as error:
        load_dataset(f"folder:{tmp_path}", "train")
    assert_one_line(error)
    with pytest.raises(DataError, match="28x28"):
        load_dataset("mnist", "train", image_size=32)


# ---------------------------------------------------------------------------------------------
# Full MNIST (skipped without ../shared/data/mnist)


def test_mnist_protocol_split_sizes_and_disjoint(shared_mnist):
    splits = {s: load_dataset("mnist", s, str(shared_mnist), download=False)
              for s in ("train", "valid", "test")}
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [50_000, 10_000, 10_000]
    for data in splits.values():
        assert data.images.shape[1:] == (1, 28, 28) and data.levels == 256
        assert data.labels.dtype == torch.int64 and set(data.labels.unique().tolist()) == set(range(10))
    train = {bytes(image) for image in splits["train"].images.numpy()}
    for held_out in ("valid", "test"):
        assert not train & {bytes(image) for image in splits[held_out].images.numpy()}
    # The embedded sample is a prefix of each split.
    for split, data in splits.items():
        sample = load_dataset("sample", split)
        assert torch.equal(sample.images, data.images[:len(sample)])
        assert torch.equal(sample.labels, data.labels[:len(sample)])


def test_binarized_mnist_cached_deterministic_and_matches_sample(shared_mnist, tmp_path, no_network):
    for name in MNIST_FILES:
        shutil.copy(shared_mnist / name, tmp_path / name)
    first = load_dataset("binarized-mnist", "valid", str(tmp_path))
    assert list(tmp_path.glob("binarized-mnist-*.npz"))  # cached in the writable data root
    second = load_dataset("binarized-mnist", "valid", str(tmp_path))  # read from the cache
    assert first.levels == 2 and len(first) == 10_000 and set(first.images.unique().tolist()) == {0, 1}
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    gray = load_dataset("mnist", "valid", str(tmp_path))
    assert abs(first.images.double().mean() - gray.images.double().mean() / 255) < 0.002
    sample = load_dataset("sample-binarized", "valid")
    assert torch.equal(sample.images, first.images[:len(sample)])
    assert not no_network


def test_dynamic_binarization_draws_fresh_unbiased_pixels():
    torch.manual_seed(0)
    intensities = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    intensities[0] = 0
    intensities[1] = 255
    fixed = (torch.rand(intensities.shape) * 255 < intensities).to(torch.uint8)
    data = DynamicallyBinarizedDataset(fixed, None, 2, 0, "toy", intensities).subset(6)
    assert isinstance(data, DynamicallyBinarizedDataset) and len(data) == 6
    index = torch.arange(6)
    first, second = data.get_batch(index)["image"], data.get_batch(index)["image"]
    assert first.dtype == torch.uint8 and set(first.unique().tolist()) <= {0, 1}
    assert not torch.equal(first, second)  # a new draw on every read
    assert first[0].sum() == 0 and first[1].min() == 1  # value 0 never fires, 255 always does
    draws = torch.stack([data.get_batch(index)["image"] for _ in range(400)]).double().mean(0)
    assert (draws - intensities[:6].double() / 255).abs().max() < 0.12
    assert torch.equal(data.images, fixed[:6])  # .images stays one fixed binarization
    with pytest.raises(ValueError):
        DynamicallyBinarizedDataset(fixed, None, 2, 0, "toy", intensities[:3])


def test_binarized_mnist_dynamic_train_split_only(shared_mnist, tmp_path, no_network):
    for name in MNIST_FILES:
        shutil.copy(shared_mnist / name, tmp_path / name)
    train = load_dataset("binarized-mnist-dynamic", "train", str(tmp_path))
    fixed_train = load_dataset("binarized-mnist", "train", str(tmp_path))
    assert isinstance(train, DynamicallyBinarizedDataset) and len(train) == 50_000 and train.levels == 2
    assert torch.equal(train.images, fixed_train.images) and torch.equal(train.labels, fixed_train.labels)
    batch = train.get_batch(torch.arange(100))["image"]
    assert 0 < (batch != fixed_train.images[:100]).double().mean() < 0.1  # same digits, new noise
    for split in ("valid", "test"):  # evaluation stays on the fixed binarization
        assert torch.equal(load_dataset("binarized-mnist-dynamic", split, str(tmp_path)).images,
                           load_dataset("binarized-mnist", split, str(tmp_path)).images)
