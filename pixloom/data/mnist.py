"""MNIST, Fashion-MNIST and binarized MNIST, read from the original IDX files.

References:
    MNIST: Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning applied to
    document recognition", Proc. IEEE 86(11), 1998. Data by Yann LeCun, Corinna Cortes and
    Christopher J.C. Burges, CC BY-SA 3.0.
    Fashion-MNIST: H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a novel image dataset for
    benchmarking machine learning algorithms", arXiv:1708.07747, 2017. MIT license.
    Binarized MNIST: H. Larochelle and I. Murray, "The neural autoregressive distribution
    estimator", AISTATS 2011.

Protocol (the usual one for likelihood benchmarks): ``train`` = the first 50,000 images of the
official training file, ``valid`` = its last 10,000, ``test`` = the 10,000 images of the test file.

Files. The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, gzip-compressed or not) are looked up in
``ROOT``, ``ROOT/mnist`` and ``ROOT/MNIST/raw`` (``ROOT/fashion-mnist`` and
``ROOT/FashionMNIST/raw`` for Fashion-MNIST). Missing files are downloaded from the standard
mirrors into ``ROOT/mnist`` (``ROOT/fashion-mnist``). Every file is checked against the published
MD5 of the ``.gz`` file or, for local copies that were decompressed or re-gzipped, against the MD5
of the original uncompressed bytes; a file matching neither is refused.

Binarized MNIST (levels 2). If Larochelle's ``binarized_mnist_{train,valid,test}.amat`` files are
all present in one of the folders above, they are used as is (they have no labels). Otherwise the
8-bit images are binarized once, pixel = 1 with probability value/255, by :func:`binarize`: the
60,000 training images and the 10,000 test images are cut into blocks of 1,000 images; block ``b``
of file ``f`` (0 = train, 1 = test) draws one uniform float64 ``u`` per pixel, in row-major order,
from ``np.random.default_rng([BINARIZE_SEED, f, b])`` and sets the pixel to 1 where
``255 * u < value``. The result is fixed whatever split is loaded first, and the embedded sample
(:mod:`pixloom.data.embedded`) gets exactly the same pixels for the same images. The binarized
arrays are cached as ``ROOT/binarized-mnist-seed1998-v1.npz`` when ROOT is writable, and
recomputed in memory otherwise.
"""

from __future__ import annotations

import gzip
import io
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pixloom.data.base import DynamicallyBinarizedDataset, ImageDataset
from pixloom.data.download import DownloadFailed, download_file, md5_hex, one_line, read_bytes
from pixloom.errors import DataError, arg
from pixloom.io import atomic_write_bytes

SPLITS = ("train", "valid", "test")
NUM_TRAIN = 50_000  # the first 50,000 training images; the remaining 10,000 are the validation set
NUM_CLASSES = 10
IMAGE_SIZE = 28

BINARIZE_SEED = 1998  # fixed forever: changing it changes every binarized-MNIST result
BINARIZE_BLOCK = 1_000  # images per random stream (see the module docstring)
_BINARIZE_FILES = {"train": 0, "test": 1}
_BINARIZE_CACHE = f"binarized-mnist-seed{BINARIZE_SEED}-v1.npz"

AMAT_FILES = {split: f"binarized_mnist_{split}.amat" for split in SPLITS}


@dataclass(frozen=True)
class IdxFile:
    """One of the four files of an MNIST-style data set."""

    name: str  # without ".gz"
    gz_md5: str  # MD5 of the published .gz file
    raw_md5: str | None  # MD5 of the uncompressed file, where known
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Source:
    """An MNIST-style data set: where to look for it, where to get it, how to check it."""

    title: str
    subdirs: tuple[str, ...]  # looked up under the data root; the first one receives downloads
    mirrors: tuple[str, ...]
    files: dict[str, IdxFile]  # keys: train-images, train-labels, test-images, test-labels

    def hint(self) -> str:
        return (f"pass {arg('data_dir')} DIR with the four {self.title} IDX files "
                f"({', '.join(f.name + '.gz' for f in self.files.values())}), or set PIXLOOM_DATA")


MNIST = Source(
    title="MNIST",
    subdirs=("mnist", "MNIST/raw"),
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
             "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    files={
        "train-images": IdxFile("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                "6bbc9ace898e44ae57da46a324031adb", (60_000, 28, 28)),
        "train-labels": IdxFile("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432",
                                "a25bea736e30d166cdddb491f175f624", (60_000,)),
        "test-images": IdxFile("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3",
                               "2646ac647ad5339dbf082846283269ea", (10_000, 28, 28)),
        "test-labels": IdxFile("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c",
                               "27ae3e4e09519cfbb04c329615203637", (10_000,)),
    },
)

# The uncompressed Fashion-MNIST checksums are not published: only the original .gz files verify.
FASHION_MNIST = Source(
    title="Fashion-MNIST",
    subdirs=("fashion-mnist", "FashionMNIST/raw"),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    files={
        "train-images": IdxFile("train-images-idx3-ubyte", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                None, (60_000, 28, 28)),
        "train-labels": IdxFile("train-labels-idx1-ubyte", "25c81989df183df01b3e8a0aad5dffbe",
                                None, (60_000,)),
        "test-images": IdxFile("t10k-images-idx3-ubyte", "bef4ecab320f06d8554ea6380940ec79",
                               None, (10_000, 28, 28)),
        "test-labels": IdxFile("t10k-labels-idx1-ubyte", "bb300cfdad3c16e7a12a480ee83cd310",
                               None, (10_000,)),
    },
)


# ----------------------------------------------------------------------------------------------
# IDX and AMAT readers


_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _gunzip(data: bytes, where: str | Path) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"corrupt gzip file {where}: {one_line(exc)}") from None


def parse_idx(data: bytes, where: str | Path = "<bytes>") -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into a read-only array.

    IDX: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions, each dimension
    as a big-endian uint32, then the values in row-major order.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise DataError(f"corrupt IDX file {where}: bad magic number {data[:4].hex() or 'none'}")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    start = 4 + 4 * ndim
    if len(data) < start:
        raise DataError(f"corrupt IDX file {where}: truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:start])
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - start != expected:
        raise DataError(f"corrupt IDX file {where}: header says shape {shape} ({expected} bytes) "
                        f"but {len(data) - start} bytes follow")
    return np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=start).reshape(shape)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not (detected from its content)."""
    data = read_bytes(path)
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, path)
    return parse_idx(data, path)


def read_amat(path: str | Path) -> np.ndarray:
    """Read one of Larochelle's binarized-MNIST ``.amat`` files as a uint8 array (N, 28, 28).

    Each line holds 784 whitespace-separated 0/1 values.
    """
    try:
        rows = np.loadtxt(path, dtype=np.uint8, ndmin=2)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {one_line(exc)}") from None
    except ValueError as exc:
        raise DataError(f"corrupt .amat file {path}: {one_line(exc)}") from None
    if rows.shape[0] == 0 or rows.shape[1] != IMAGE_SIZE * IMAGE_SIZE:
        raise DataError(f"corrupt .amat file {path}: expected rows of 784 values, got shape {rows.shape}")
    if rows.max() > 1:
        raise DataError(f"corrupt .amat file {path}: values other than 0 and 1")
    return rows.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def read_verified(path: str | Path, spec: IdxFile, source: Source = MNIST) -> np.ndarray:
    """Read a data-set file, check it against the published checksums and the expected shape."""
    data = read_bytes(path)
    verified = False
    if data[:2] == b"\x1f\x8b":
        verified = md5_hex(data) == spec.gz_md5
        data = _gunzip(data, path)
    if not verified and not (spec.raw_md5 and md5_hex(data) == spec.raw_md5):
        which = "the published .gz file" if spec.raw_md5 is None else "the published files"
        raise DataError(f"corrupt {source.title} file {path}: its MD5 does not match {which}; "
                        f"delete it to download it again, or replace it with the original")
    array = parse_idx(data, path)
    if array.shape != spec.shape or array.dtype != np.uint8:
        raise DataError(f"corrupt {source.title} file {path}: expected uint8 {spec.shape}, "
                        f"got {array.dtype} {array.shape}")
    return array


# ----------------------------------------------------------------------------------------------
# Finding and downloading


def _candidate_dirs(root: Path, source: Source) -> list[Path]:
    return [root, *(root / sub for sub in source.subdirs)]


def _find(root: Path, source: Source, key: str) -> Path | None:
    name = source.files[key].name
    # The LeCun site spells the uncompressed files "train-images.idx3-ubyte" in some archives.
    names = (name + ".gz", name, name.replace("-idx", ".idx"))
    for folder in _candidate_dirs(root, source):
        for candidate in names:
            if (folder / candidate).is_file():
                return folder / candidate
    return None


def _locate(root: Path, source: Source, keys: tuple[str, ...], download: bool) -> dict[str, Path]:
    """Paths of the files ``keys``, downloading the missing ones when allowed."""
    found = {key: _find(root, source, key) for key in keys}
    missing = [key for key, path in found.items() if path is None]
    if not missing:
        return found
    if not download:
        raise DataError(f"{source.title} not found in {root} (download disabled): {source.hint()}")
    target = root / source.subdirs[0]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{source.title} not found in {root} and cannot create {target} to download it "
                        f"({one_line(exc.strerror or exc)}): {source.hint()}") from None
    for key in missing:
        spec = source.files[key]
        dest = target / (spec.name + ".gz")
        try:
            download_file([m + spec.name + ".gz" for m in source.mirrors], dest, spec.gz_md5)
        except DownloadFailed as exc:
            raise DataError(f"{source.title} not found in {root} and download failed (no network? "
                            f"{one_line(exc)}): {source.hint()}") from None
        except OSError as exc:  # the temporary file cannot be created or renamed
            raise DataError(f"{source.title} not found in {root} and cannot write to {target} "
                            f"({one_line(exc.strerror or exc)}): {source.hint()}") from None
        found[key] = dest
    return found


# ----------------------------------------------------------------------------------------------
# Loaders


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")


def _load_file_pair(root: Path, source: Source, part: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) of the official ``train`` or ``test`` file."""
    keys = (f"{part}-images", f"{part}-labels")
    paths = _locate(root, source, keys, download)
    images, labels = (read_verified(paths[k], source.files[k], source) for k in keys)
    return images, labels


def _split_slice(split: str) -> tuple[str, slice]:
    """Which official file a split comes from, and which images of it."""
    return {"train": ("train", slice(0, NUM_TRAIN)),
            "valid": ("train", slice(NUM_TRAIN, None)),
            "test": ("test", slice(None))}[split]


def _to_dataset(images: np.ndarray, labels: np.ndarray | None, levels: int, name: str) -> ImageDataset:
    tensor = torch.from_numpy(np.array(images, dtype=np.uint8)).unsqueeze(1)  # copy, (N, 1, H, W)
    label_tensor = None if labels is None else torch.from_numpy(np.array(labels, dtype=np.int64))
    return ImageDataset(tensor, label_tensor, levels, NUM_CLASSES if labels is not None else 0, name)


def load_mnist(split: str, root: str | Path, download: bool = True, fashion: bool = False) -> ImageDataset:
    """MNIST (or Fashion-MNIST) as 8-bit images, levels 256, with int64 labels 0..9."""
    _check_split(split)
    source = FASHION_MNIST if fashion else MNIST
    part, rows = _split_slice(split)
    images, labels = _load_file_pair(Path(root), source, part, download)
    name = "fashion-mnist" if fashion else "mnist"
    return _to_dataset(images[rows], labels[rows], 256, f"{name}/{split}")


def binarize(images: np.ndarray, part: str, start: int = 0) -> np.ndarray:
    """Binarize 8-bit MNIST images with the fixed Bernoulli(value/255) scheme.

    ``images`` are consecutive images of the official ``part`` file ("train" or "test") starting
    at image ``start``, which must be a multiple of :data:`BINARIZE_BLOCK`; the result is the same
    as the matching images of the whole binarized file.
    """
    if start % BINARIZE_BLOCK:
        raise ValueError(f"start must be a multiple of {BINARIZE_BLOCK}")
    out = np.empty(images.shape, dtype=np.uint8)
    for offset in range(0, len(images), BINARIZE_BLOCK):
        block = images[offset:offset + BINARIZE_BLOCK]
        block_index = (start + offset) // BINARIZE_BLOCK
        rng = np.random.default_rng([BINARIZE_SEED, _BINARIZE_FILES[part], block_index])
        out[offset:offset + len(block)] = rng.random(block.shape) * 255.0 < block
    return out


def _read_binarized_cache(path: Path) -> dict[str, np.ndarray] | None:
    expected = {"train_images": (60_000, 28, 28), "train_labels": (60_000,),
                "test_images": (10_000, 28, 28), "test_labels": (10_000,)}
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in expected}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    for key, shape in expected.items():
        if arrays[key].shape != shape or arrays[key].dtype != np.uint8:
            return None
    if arrays["train_images"].max() > 1 or arrays["test_images"].max() > 1:
        return None
    return arrays


def _binarized_arrays(root: Path, download: bool) -> dict[str, np.ndarray]:
    """The whole binarized train and test files, from the cache or computed (and cached)."""
    cache = root / _BINARIZE_CACHE
    if cache.is_file() and (arrays := _read_binarized_cache(cache)) is not None:
        return arrays
    arrays = {}
    for part in ("train", "test"):
        images, labels = _load_file_pair(root, MNIST, part, download)
        arrays[f"{part}_images"] = binarize(images, part)
        arrays[f"{part}_labels"] = np.asarray(labels, dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    try:
        atomic_write_bytes(cache, buffer.getvalue())
    except OSError:
        pass  # read-only data root: keep the arrays in memory only
    return arrays


def _find_amat(root: Path) -> dict[str, Path] | None:
    for folder in _candidate_dirs(root, MNIST):
        paths = {split: folder / name for split, name in AMAT_FILES.items()}
        if all(path.is_file() for path in paths.values()):
            return paths
    return None


def load_binarized_mnist(split: str, root: str | Path, download: bool = True, dynamic: bool = False) -> ImageDataset:
    """Binarized MNIST, levels 2 (Larochelle's .amat files when present, else the fixed scheme).

    ``dynamic``: every batch read with ``get_batch`` is binarized afresh from the 8-bit images
    (:class:`~pixloom.data.base.DynamicallyBinarizedDataset`); ``.images`` stays the fixed binarization
    of the IDX images (the .amat files are not used, as their 8-bit source images are not known).
    """
    _check_split(split)
    root = Path(root)
    amat = None if dynamic else _find_amat(root)
    if amat is not None:
        return _to_dataset(read_amat(amat[split]), None, 2, f"binarized-mnist/{split}")
    part, rows = _split_slice(split)
    arrays = _binarized_arrays(root, download)
    fixed = _to_dataset(arrays[f"{part}_images"][rows], arrays[f"{part}_labels"][rows], 2, f"binarized-mnist/{split}")
    if not dynamic:
        return fixed
    intensities = load_mnist(split, root, download).images
    return DynamicallyBinarizedDataset(fixed.images, fixed.labels, 2, fixed.num_classes,
                                       f"binarized-mnist-dynamic/{split}", intensities)
