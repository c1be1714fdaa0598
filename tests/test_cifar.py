"""Tests of pixloom.data.cifar on tiny fake CIFAR-10 files in both official formats.

The fake batches hold a few records each, so the validation split is shrunk with ``NUM_VALID``
(5,000 on the real data). Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from pixloom.data import DATASETS, load_dataset
from pixloom.data import cifar
from pixloom.errors import DataError

PER_BATCH = 4  # records per fake training batch: 5 x 4 = 20 training images
TEST_RECORDS = 3
FAKE_VALID = 6  # the last 6 fake training images are the validation split


@pytest.fixture(autouse=True)
def small_valid(monkeypatch):
    monkeypatch.setattr(cifar, "NUM_VALID", FAKE_VALID)


@pytest.fixture
def no_network(monkeypatch):
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


def fake_batch(index: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic images (n, 3072) uint8 and labels (n,): image k of batch b has pixel 0 = 10*b + k."""
    rng = np.random.default_rng(index)
    images = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    images[:, 0] = 10 * index + np.arange(n)
    labels = (np.arange(n) + index) % 10
    return images, labels


def batches() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {f"data_batch_{i}": fake_batch(i, PER_BATCH) for i in range(1, 6)}
    out["test_batch"] = fake_batch(9, TEST_RECORDS)
    return out


def py2_pickle(images: np.ndarray, labels: np.ndarray) -> bytes:
    """A batch pickled the way the official files are: Python 2 strings, numpy 1.x globals."""
    def text(value: bytes) -> bytes:  # SHORT_BINSTRING or BINSTRING (a Python 2 str)
        if len(value) < 256:
            return b"U" + bytes([len(value)]) + value
        return b"T" + struct.pack("<I", len(value)) + value

    n = len(labels)
    dtype = (b"cnumpy\ndtype\n" + text(b"u1") + b"K\x00K\x01\x87R"
             + b"(K\x03" + text(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + text(b"b") + b"\x87R"
             + b"(K\x01M" + struct.pack("<H", n) + b"M\x00\x0c\x86" + dtype + b"\x89" + text(images.tobytes())
             + b"tb")
    label_list = b"](" + b"".join(b"K" + bytes([int(v)]) for v in labels) + b"e"
    return b"\x80\x02}(" + text(b"data") + array + text(b"labels") + label_list + b"u."


def binary_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    return np.concatenate([labels.astype(np.uint8)[:, None], images], axis=1).tobytes()


def python_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    # Protocol 4 keeps bytes keys as bytes and numpy arrays as _reconstruct calls, like the
    # official (Python 2) files.
    return pickle.dumps({b"batch_label": b"fake", b"labels": labels.tolist(), b"data": images,
                         b"filenames": [b"x.png"] * len(labels)}, protocol=4)


def write_binary(folder: Path) -> Path:
    sub = folder / "cifar-10-batches-bin"
    sub.mkdir(parents=True)
    for name, (images, labels) in batches().items():
        (sub / f"{name}.bin").write_bytes(binary_bytes(images, labels))
    return sub


def write_python(folder: Path, invert: bool = False) -> Path:
    """The python version; ``invert`` flips the pixels so that it is told apart from the binary one."""
    sub = folder / "cifar-10-batches-py"
    sub.mkdir(parents=True)
    for name, (images, labels) in batches().items():
        (sub / name).write_bytes(python_bytes(255 - images if invert else images, labels))
    return sub


def expected(split: str) -> tuple[np.ndarray, np.ndarray]:
    parts = batches()
    if split == "test":
        images, labels = parts["test_batch"]
    else:
        images = np.concatenate([parts[f"data_batch_{i}"][0] for i in range(1, 6)])
        labels = np.concatenate([parts[f"data_batch_{i}"][1] for i in range(1, 6)])
        rows = slice(0, -FAKE_VALID) if split == "train" else slice(-FAKE_VALID, None)
        images, labels = images[rows], labels[rows]
    return images.reshape(-1, 3, 32, 32), labels


def check(data, split: str, invert: bool = False) -> None:
    images, labels = expected(split)
    assert data.images.dtype == torch.uint8 and data.images.shape == (len(labels), 3, 32, 32)
    assert data.labels.dtype == torch.int64 and data.levels == 256 and data.num_classes == 10
    np.testing.assert_array_equal(data.images.numpy(), 255 - images if invert else images)
    np.testing.assert_array_equal(data.labels.numpy(), labels)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize("fmt", ["binary", "python"])
@pytest.mark.parametrize("subdir", ["", "cifar10", "cifar-10"])
def test_both_formats_splits_and_folders(tmp_path, no_network, fmt, subdir):
    (write_binary if fmt == "binary" else write_python)(tmp_path / subdir)
    sizes = {}
    for split in ("train", "valid", "test"):
        data = load_dataset("cifar10", split, str(tmp_path))
        check(data, split)
        sizes[split] = len(data)
    assert sizes == {"train": 5 * PER_BATCH - FAKE_VALID, "valid": FAKE_VALID, "test": TEST_RECORDS}
    assert not no_network


def test_python_2_pickle_as_published(tmp_path):
    sub = write_python(tmp_path)
    images, labels = batches()["test_batch"]
    data = py2_pickle(images, labels)
    assert b"numpy.core.multiarray" in data and b"_codecs" not in data
    (sub / "test_batch").write_bytes(data)
    check(load_dataset("cifar10", "test", str(tmp_path), download=False), "test")


def test_batch_folder_given_directly(tmp_path):
    check(cifar.load_cifar10("valid", write_python(tmp_path), download=False), "valid")


def test_binary_preferred_over_python(tmp_path):
    write_python(tmp_path, invert=True)
    check(load_dataset("cifar10", "test", str(tmp_path), download=False), "test", invert=True)
    write_binary(tmp_path / "cifar10")
    check(load_dataset("cifar10", "test", str(tmp_path), download=False), "test")


def test_registered_and_resize_refused():
    assert "cifar10" in DATASETS and "\n" not in DATASETS["cifar10"].summary
    with pytest.raises(DataError, match="32x32"):
        load_dataset("cifar10", "train", image_size=28)


def make_archive(path: Path, source: Path, extra: tarfile.TarInfo | None = None) -> None:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname=source.name)
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size))


@pytest.mark.parametrize("fmt", ["binary", "python"])
def test_archive_is_extracted(tmp_path, no_network, fmt):
    staging = tmp_path / "staging"
    source = (write_binary if fmt == "binary" else write_python)(staging)
    root = tmp_path / "root"
    (root / "cifar-10").mkdir(parents=True)
    archive = root / "cifar-10" / cifar.FORMATS[fmt][1]
    make_archive(archive, source)
    check(load_dataset("cifar10", "train", str(root), download=False), "train")
    extracted = root / "cifar-10" / source.name  # extracted next to the archive
    assert sorted(p.name for p in extracted.iterdir()) == sorted(p.name for p in source.iterdir())
    assert sorted(p.name for p in (root / "cifar-10").iterdir()) == sorted([archive.name, source.name])
    archive.unlink()  # the extracted folder is used from now on
    check(load_dataset("cifar10", "test", str(root), download=False), "test")
    assert not no_network


def test_read_only_archive_folder_is_read_in_memory(tmp_path, monkeypatch):
    source = write_binary(tmp_path / "staging")
    make_archive(tmp_path / "cifar-10-binary.tar.gz", source)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cifar.tempfile, "mkdtemp", refuse)
    check(load_dataset("cifar10", "valid", str(tmp_path), download=False), "valid")


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "cifar-10-batches-bin/../../evil.txt"])
def test_archive_with_unsafe_paths_refused(tmp_path, name):
    source = write_binary(tmp_path / "staging")
    member = tarfile.TarInfo(name)
    member.size = 3
    make_archive(tmp_path / "cifar-10-binary.tar.gz", source, member)
    with pytest.raises(DataError, match="unsafe member path") as error:
        load_dataset("cifar10", "train", str(tmp_path), download=False)
    one_line(error)
    assert not (tmp_path.parent / "evil.txt").exists()
    assert not (tmp_path / "cifar-10-batches-bin").exists()


def test_archive_with_symlink_refused(tmp_path):
    source = write_binary(tmp_path / "staging")
    link = tarfile.TarInfo("cifar-10-batches-bin/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    make_archive(tmp_path / "cifar-10-binary.tar.gz", source, link)
    with pytest.raises(DataError, match="link"):
        load_dataset("cifar10", "train", str(tmp_path), download=False)


def test_truncated_archive_is_corrupt(tmp_path):
    source = write_binary(tmp_path / "staging")
    archive = tmp_path / "cifar-10-binary.tar.gz"
    make_archive(archive, source)
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError, match="corrupt archive") as error:
        load_dataset("cifar10", "train", str(tmp_path), download=False)
    one_line(error)


@pytest.mark.parametrize("call, refused", [
    (lambda marker: (os.system, (f"touch {marker}",)), "system"),
    (lambda marker: (eval, (f"open({str(marker)!r}, 'w').close()",)), "builtins.eval"),
])
def test_malicious_pickle_refused_and_never_run(tmp_path, call, refused):
    sub = write_python(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return call(marker)

    (sub / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=4))
    with pytest.raises(DataError, match="refusing to load") as error:
        load_dataset("cifar10", "test", str(tmp_path), download=False)
    assert refused in one_line(error) and "test_batch" in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps({b"data": [1, 2, 3], b"labels": [0]}),  # not an array
    pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=4),  # 2 images, 1 label
    pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, protocol=4),  # label 10
    pickle.dumps([1, 2]),
    b"not a pickle at all",
])
def test_malformed_pickle_is_corrupt(tmp_path, payload):
    sub = write_python(tmp_path)
    (sub / "test_batch").write_bytes(payload)
    with pytest.raises(DataError, match="corrupt CIFAR-10 file") as error:
        load_dataset("cifar10", "test", str(tmp_path), download=False)
    one_line(error)


def test_truncated_binary_batch_is_corrupt(tmp_path):
    sub = write_binary(tmp_path)
    path = sub / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="corrupt CIFAR-10 file") as error:
        load_dataset("cifar10", "valid", str(tmp_path), download=False)
    assert "data_batch_3.bin" in one_line(error) and "3073" in str(error.value)


def test_offline_download_fails_with_one_line_hint(tmp_path, no_network):
    root = tmp_path / "empty"
    with pytest.raises(DataError, match="download failed") as error:
        load_dataset("cifar10", "train", str(root))
    message = one_line(error)
    assert "data_dir" in message and "PIXLOOM_DATA" in message and str(root) in message
    assert no_network == ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]
    assert not any(path.is_file() for path in root.rglob("*"))  # no partial download left


def test_download_false_never_touches_network(tmp_path, no_network):
    with pytest.raises(DataError, match="download disabled") as error:
        load_dataset("cifar10", "test", str(tmp_path), download=False)
    assert "data_dir" in one_line(error) and "PIXLOOM_DATA" in str(error.value)
    assert not no_network


def test_download_verifies_md5_then_extracts(tmp_path, monkeypatch):
    source = write_binary(tmp_path / "staging")
    archive = tmp_path / "served.tar.gz"
    make_archive(archive, source)
    served = archive.read_bytes()
    urls = []

    def serve(url, timeout):
        urls.append((url, timeout))
        return io.BytesIO(served)

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    root = tmp_path / "root"
    with pytest.raises(DataError, match="MD5 mismatch"):  # the fake archive is not the official one
        load_dataset("cifar10", "test", str(root))
    assert not list((root / "cifar10").iterdir())
    assert urls and urls[0][1] <= 30  # short timeout

    digest = hashlib.md5(served).hexdigest()
    monkeypatch.setitem(cifar.FORMATS, "binary", (*cifar.FORMATS["binary"][:2], digest, ".bin"))
    check(load_dataset("cifar10", "test", str(root)), "test")
    assert (root / "cifar10" / "cifar-10-binary.tar.gz").is_file()
    assert (root / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin").is_file()
