"""A lock on a run directory, so that two training processes never write into the same run.

The lock is an OS-level advisory lock (``flock``) on ``<run>/.lock``; the file also records the
holder's process id and command. The kernel drops the lock when its process ends, however it ends
(a crash or SIGKILL included), so a lock left behind by a dead process never blocks. A second
process asking for a held lock gets a one-line :class:`~pixloom.errors.RunLocked` error at once.
On a platform without ``fcntl`` the lock is a no-op.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pixloom.errors import RunLocked

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".lock"


class RunLock:
    """``with RunLock(run_dir):`` holds the run directory for this process (re-entrant within it)."""

    _held: dict[str, int] = {}  # run directory -> depth, for re-entry in one process

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.key = str(self.run_dir.resolve())
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        if self.key in RunLock._held:
            RunLock._held[self.key] += 1
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise RunLocked(f"{self.run_dir} is in use by {holder}; wait for it to finish or pick another "
                                "run directory") from None
        os.ftruncate(fd, 0)
        command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300]
        os.pwrite(fd, f"process {os.getpid()} ({command})\n".encode(), 0)
        self.fd = fd
        RunLock._held[self.key] = 1
        return self

    def __exit__(self, *exc) -> None:
        depth = RunLock._held.get(self.key, 0)
        if depth > 1:
            RunLock._held[self.key] = depth - 1
            return
        RunLock._held.pop(self.key, None)
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None
