"""Make ``pixloom/data/assets/mnist_sample.npz``, the MNIST sample shipped with pixloom.

    python bench/make_embedded_sample.py [--source DIR] [--out FILE]

Reads the four official MNIST IDX files from ``--source`` (default: ../shared/data/mnist next to
the repository), checks them against the published checksums, and keeps

* train: the first 6,000 images of the training file,
* valid: the first 1,000 of its last 10,000 images (training images 50,000 to 50,999),
* test:  the first 1,000 images of the test file,

as uint8 arrays ``{split}_images`` (N, 28, 28) and ``{split}_labels`` (N,). The file has the
format ``np.savez_compressed`` writes (a deflated zip of .npy files), but with fixed timestamps, so
that running the script again gives byte-identical output.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout, installed or not

from pixloom.data.embedded import SAMPLE_SIZES  # noqa: E402
from pixloom.data.mnist import MNIST, NUM_TRAIN, read_verified  # noqa: E402
from pixloom.io import atomic_write_bytes  # noqa: E402

DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "mnist"
DEFAULT_OUT = REPO / "pixloom" / "data" / "assets" / "mnist_sample.npz"
MAX_BYTES = 2_200_000


def deterministic_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed .npz of ``arrays`` whose bytes depend on the arrays only."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with the MNIST IDX files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    def read(key: str) -> np.ndarray:
        spec = MNIST.files[key]
        candidates = (args.source / f"{spec.name}.gz", args.source / spec.name)
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise SystemExit(f"{spec.name}(.gz) not found in {args.source}")
        return read_verified(path, spec, MNIST)

    train_images, train_labels = read("train-images"), read("train-labels")
    test_images, test_labels = read("test-images"), read("test-labels")
    n_train, n_valid, n_test = SAMPLE_SIZES["train"], SAMPLE_SIZES["valid"], SAMPLE_SIZES["test"]
    arrays = {
        "train_images": train_images[:n_train], "train_labels": train_labels[:n_train],
        "valid_images": train_images[NUM_TRAIN:NUM_TRAIN + n_valid],
        "valid_labels": train_labels[NUM_TRAIN:NUM_TRAIN + n_valid],
        "test_images": test_images[:n_test], "test_labels": test_labels[:n_test],
    }
    data = deterministic_npz(arrays)
    if len(data) > MAX_BYTES:
        raise SystemExit(f"sample is {len(data):,} bytes, over the {MAX_BYTES:,} byte budget")
    atomic_write_bytes(args.out, data)
    args.out.chmod(0o644)  # a package data file, not a private temporary file
    print(f"wrote {args.out} ({len(data):,} bytes)")


if __name__ == "__main__":
    main()
