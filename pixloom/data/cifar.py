"""CIFAR-10: 60,000 colour images 32x32 in 10 classes, read from the official batch files.

Reference:
    A. Krizhevsky, "Learning multiple layers of features from tiny images", technical report,
    University of Toronto, 2009. https://www.cs.toronto.edu/~kriz/cifar.html

Protocol: ``train`` = the first 45,000 of the 50,000 official training images (``data_batch_1``
to ``data_batch_5``, concatenated in that order), ``valid`` = their last 5,000 (the second half of
``data_batch_5``), ``test`` = the 10,000 images of ``test_batch``. Images are uint8 tensors
(N, 3, 32, 32) in RGB order, levels 256; labels are int64 0..9 (airplane, automobile, bird, cat,
deer, dog, frog, horse, ship, truck).

Files. Both official formats are read:

* the binary version, ``cifar-10-batches-bin/data_batch_{1..5}.bin`` and ``test_batch.bin``:
  records of 1 label byte followed by 3,072 pixel bytes (1,024 red, then green, then blue, each
  row-major);
* the python version, ``cifar-10-batches-py/data_batch_{1..5}`` and ``test_batch``: pickled
  dictionaries holding ``data`` (a uint8 array (N, 3072), same layout) and ``labels``. These are
  read with a restricted unpickler that only rebuilds numpy arrays; a file that references
  anything else is refused before it can run, never loaded with plain ``pickle.load``.

The batch folders (or the official archives ``cifar-10-binary.tar.gz`` /
``cifar-10-python.tar.gz``, extracted next to themselves on first use) are looked up in ``ROOT``,
``ROOT/cifar10`` and ``ROOT/cifar-10``; ``ROOT`` may also be a batch folder itself. The binary
version is preferred when both are present. When nothing is found, the binary archive is
downloaded into ``ROOT/cifar10``, checked against its published MD5 and extracted. Local files
are checked for structure (whole records, labels 0..9), not against checksums.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from pixloom.data.base import ImageDataset
from pixloom.data.download import DownloadFailed, download_file, one_line, read_bytes
from pixloom.errors import DataError, arg

SPLITS = ("train", "valid", "test")
NUM_VALID = 5_000  # the last 5,000 official training images; the first 45,000 are ``train``
NUM_CLASSES = 10
IMAGE_SIZE = 32
CHANNELS = 3
PIXEL_BYTES = CHANNELS * IMAGE_SIZE * IMAGE_SIZE  # 3,072
RECORD_BYTES = 1 + PIXEL_BYTES  # binary version: 1 label byte + the pixels

SUBDIRS = ("cifar10", "cifar-10")  # looked up under the data root; the first one receives downloads
URL = "https://www.cs.toronto.edu/~kriz/"

# format -> (extracted folder, archive, archive MD5, batch file suffix)
FORMATS = {
    "binary": ("cifar-10-batches-bin", "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", ".bin"),
    "python": ("cifar-10-batches-py", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", ""),
}
DOWNLOAD_FORMAT = "binary"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"

HINT = (f"pass {arg('data_dir')} DIR holding cifar-10-batches-bin/ or cifar-10-batches-py/ (or the archive "
        f"cifar-10-binary.tar.gz or cifar-10-python.tar.gz from {URL}cifar.html), or set PIXLOOM_DATA")


# ----------------------------------------------------------------------------------------------
# Readers


def parse_binary_batch(data: bytes, where: str | Path = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) of a binary-version batch file."""
    if not data or len(data) % RECORD_BYTES:
        raise DataError(f"corrupt CIFAR-10 file {where}: {len(data)} bytes is not a whole number of "
                        f"{RECORD_BYTES}-byte records")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    return _checked(records[:, 1:], records[:, 0], where)


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as function  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as function
    return function


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles the python-version batch files: plain containers and numpy arrays, nothing else.

    ``find_class`` is the only way a pickle can reach code; it hands out numpy's array
    reconstruction and nothing more, so a tampered file cannot call ``os.system`` and the like.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),  # written by numpy 1.x (the official files)
        ("numpy._core.multiarray", "_reconstruct"),  # written by numpy 2.x
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def __init__(self, file, where: str | Path = "<bytes>"):
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to load {self.where}: the pickle references {module}.{name}, "
                            f"which CIFAR-10 files never need (only numpy arrays are allowed)")
        if name == "_reconstruct":
            return _reconstruct()
        return getattr(np, name)

    def persistent_load(self, pid):
        raise DataError(f"refusing to load {self.where}: the pickle uses persistent ids")


def parse_python_batch(data: bytes, where: str | Path = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) of a python-version (pickled) batch file."""
    try:
        batch = RestrictedUnpickler(io.BytesIO(data), where).load()
    except DataError:
        raise
    except Exception as exc:  # malformed pickles raise almost anything
        raise DataError(f"corrupt CIFAR-10 file {where}: cannot unpickle it "
                        f"({type(exc).__name__}: {one_line(exc)})") from None
    if not isinstance(batch, dict):
        raise DataError(f"corrupt CIFAR-10 file {where}: expected a pickled dict, got {type(batch).__name__}")
    images = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 \
            or images.shape[1] != PIXEL_BYTES or images.shape[0] == 0:
        described = (f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray)
                     else type(images).__name__)
        raise DataError(f"corrupt CIFAR-10 file {where}: expected 'data' as uint8 (N, {PIXEL_BYTES}), "
                        f"got {described}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"corrupt CIFAR-10 file {where}: 'labels' is not a list of integers") from None
    if labels.shape != (images.shape[0],):
        raise DataError(f"corrupt CIFAR-10 file {where}: {images.shape[0]} images but labels of "
                        f"shape {labels.shape}")
    return _checked(images, labels, where)


def _checked(pixels: np.ndarray, labels: np.ndarray, where: str | Path) -> tuple[np.ndarray, np.ndarray]:
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"corrupt CIFAR-10 file {where}: labels outside 0..{NUM_CLASSES - 1}")
    return pixels.reshape(-1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE), labels


_PARSERS = {"binary": parse_binary_batch, "python": parse_python_batch}


# ----------------------------------------------------------------------------------------------
# Finding, extracting and downloading


def _batch_names(fmt: str) -> tuple[str, ...]:
    suffix = FORMATS[fmt][3]
    return tuple(name + suffix for name in (*TRAIN_BATCHES, TEST_BATCH))


def _candidate_dirs(root: Path) -> list[Path]:
    return [root, *(root / sub for sub in SUBDIRS)]


def _find_folder(root: Path, fmt: str) -> Path | None:
    """The first folder holding all six batch files of format ``fmt``."""
    names = _batch_names(fmt)
    folders = [folder / FORMATS[fmt][0] for folder in _candidate_dirs(root)] + [root]
    for folder in folders:
        if all((folder / name).is_file() for name in names):
            return folder
    return None


def _find_archive(root: Path, fmt: str) -> Path | None:
    for folder in _candidate_dirs(root):
        if (folder / FORMATS[fmt][1]).is_file():
            return folder / FORMATS[fmt][1]
    return None


def _safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """All members, refusing absolute paths, ``..``, links and special files."""
    members = tar.getmembers()
    for member in members:
        name = member.name.replace("\\", "/")
        if name.startswith("/") or name[1:2] == ":" or ".." in name.split("/"):
            raise DataError(f"refusing to extract {archive}: unsafe member path {member.name!r}")
        if not (member.isfile() or member.isdir()):
            raise DataError(f"refusing to extract {archive}: member {member.name!r} is a link or "
                            f"special file")
    return members


def _open_tar(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"corrupt archive {archive}: {one_line(exc)}; delete it to download it "
                        f"again, or replace it with the original") from None


def _extract(archive: Path, fmt: str) -> Path:
    """Extract ``archive`` next to itself; returns the batch folder.

    Members go to a temporary folder first and are renamed into place one file at a time, so an
    interrupted extraction never leaves a folder that looks complete.
    """
    subdir = FORMATS[fmt][0]
    dest = archive.parent / subdir
    tmp = Path(tempfile.mkdtemp(dir=archive.parent, prefix=f".{subdir}.", suffix=".part"))
    try:
        with _open_tar(archive) as tar:
            members = _safe_members(tar, archive)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **kwargs)
        source = tmp / subdir
        missing = [name for name in _batch_names(fmt) if not (source / name).is_file()]
        if missing:
            raise DataError(f"corrupt archive {archive}: {subdir}/{missing[0]} is missing")
        for path in sorted(source.rglob("*")):
            target = dest / path.relative_to(source)
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
        return dest
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"corrupt archive {archive}: {one_line(exc)}; delete it to download it "
                        f"again, or replace it with the original") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_from_archive(archive: Path, fmt: str, names: tuple[str, ...]) -> dict[str, bytes]:
    """Batch files read straight from the archive (when its folder is read-only)."""
    subdir = FORMATS[fmt][0]
    with _open_tar(archive) as tar:
        found = {}
        try:
            for member in _safe_members(tar, archive):
                path = PurePosixPath(member.name)
                if member.isfile() and path.parent.name == subdir and path.name in names:
                    found[path.name] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"corrupt archive {archive}: {one_line(exc)}") from None
    missing = [name for name in names if name not in found]
    if missing:
        raise DataError(f"corrupt archive {archive}: {subdir}/{missing[0]} is missing")
    return found


def _download(root: Path) -> Path:
    """Download the binary archive into ``ROOT/cifar10``; returns its path."""
    target = root / SUBDIRS[0]
    _, archive_name, md5, _ = FORMATS[DOWNLOAD_FORMAT]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"CIFAR-10 not found in {root} and cannot create {target} to download it "
                        f"({one_line(exc.strerror or exc)}): {HINT}") from None
    dest = target / archive_name
    try:
        download_file([URL + archive_name], dest, md5)
    except DownloadFailed as exc:
        raise DataError(f"CIFAR-10 not found in {root} and download failed (no network? "
                        f"{one_line(exc)}): {HINT}") from None
    except OSError as exc:  # the temporary file cannot be created or renamed
        raise DataError(f"CIFAR-10 not found in {root} and cannot write to {target} "
                        f"({one_line(exc.strerror or exc)}): {HINT}") from None
    return dest


def _read_batches(root: Path, names: tuple[str, ...], download: bool) -> tuple[str, dict[str, bytes | Path]]:
    """The format found and, for each batch name (without suffix), its path or its bytes."""
    for fmt in FORMATS:  # binary first
        suffix = FORMATS[fmt][3]
        folder = _find_folder(root, fmt)
        if folder is None and (archive := _find_archive(root, fmt)) is not None:
            try:
                folder = _extract(archive, fmt)
            except OSError as exc:  # read-only folder: read the archive in memory instead
                print(f"pixloom: cannot extract {archive} ({one_line(exc.strerror or exc)}); "
                      f"reading it in memory", file=sys.stderr)
                data = _read_from_archive(archive, fmt, tuple(n + suffix for n in names))
                return fmt, {name: data[name + suffix] for name in names}
        if folder is not None:
            return fmt, {name: folder / (name + suffix) for name in names}
    if not download:
        raise DataError(f"CIFAR-10 not found in {root} (download disabled): {HINT}")
    archive = _download(root)
    try:
        folder = _extract(archive, DOWNLOAD_FORMAT)
    except OSError as exc:
        raise DataError(f"cannot extract {archive} ({one_line(exc.strerror or exc)}): {HINT}") from None
    return DOWNLOAD_FORMAT, {name: folder / (name + FORMATS[DOWNLOAD_FORMAT][3]) for name in names}


# ----------------------------------------------------------------------------------------------
# Loader


def load_cifar10(split: str, root: str | Path, download: bool = True) -> ImageDataset:
    """One split of CIFAR-10 (see the module docstring): uint8 (N, 3, 32, 32), levels 256."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    root = Path(root)
    names = (TEST_BATCH,) if split == "test" else TRAIN_BATCHES
    fmt, sources = _read_batches(root, names, download)
    images, labels = [], []
    for name in names:
        source = sources[name]
        data = read_bytes(source) if isinstance(source, Path) else source
        batch_images, batch_labels = _PARSERS[fmt](data, source if isinstance(source, Path) else name)
        images.append(batch_images)
        labels.append(batch_labels)
    all_images, all_labels = np.concatenate(images), np.concatenate(labels)
    if split != "test":
        if len(all_images) <= NUM_VALID:
            raise DataError(f"corrupt CIFAR-10 files in {root}: only {len(all_images)} training images, "
                            f"fewer than the {NUM_VALID} validation images plus at least one")
        rows = slice(0, -NUM_VALID) if split == "train" else slice(-NUM_VALID, None)
        all_images, all_labels = all_images[rows], all_labels[rows]
    return ImageDataset(torch.from_numpy(np.array(all_images, dtype=np.uint8)),
                        torch.from_numpy(np.array(all_labels, dtype=np.int64)),
                        256, NUM_CLASSES, f"cifar10/{split}")
