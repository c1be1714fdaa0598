"""Downloading and reading data files: one place for the network and file-reading errors.

Every data set that can be downloaded (MNIST, Fashion-MNIST, CIFAR-10) fetches its files through
:func:`download_file`, which writes to a temporary file beside the target and renames it into place
only after its MD5 matches the published checksum; nothing half-downloaded is ever left behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from pixloom.errors import DataError

DOWNLOAD_TIMEOUT = 10.0  # seconds per connection attempt


class DownloadFailed(Exception):
    """No mirror delivered the file (the message says why for the last one tried)."""


def one_line(exc: BaseException | str) -> str:
    """An exception's message on one line (whitespace collapsed)."""
    return " ".join(str(exc).split())


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a data file, or a one-line :class:`DataError`."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {one_line(exc.strerror or exc)}") from None


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def download_file(urls: list[str] | tuple[str, ...], dest: Path, md5: str) -> None:
    """Fetch the first of ``urls`` whose content has MD5 ``md5`` into ``dest``, atomically.

    The bytes go to a temporary file next to ``dest``, renamed into place once verified; nothing
    is left behind on failure. Raises :class:`DownloadFailed` with the last reason.
    """
    reason = "no mirror"
    for url in urls:
        print(f"pixloom: downloading {url}", file=sys.stderr)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            digest = hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != md5:
                reason = f"{url}: MD5 mismatch"
                continue
            os.replace(tmp, dest)
            return
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = f"{url}: {one_line(getattr(exc, 'reason', exc))}"
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DownloadFailed(reason)
