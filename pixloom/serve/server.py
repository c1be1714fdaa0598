"""Start the web app: load the models once, build the app, run uvicorn."""

from __future__ import annotations

import ipaddress
import sys

from pixloom.errors import ArgumentError, PixloomError

SERVE_EXTRA = 'pip install "pixloom[serve]"'


def default_models() -> list[str]:
    from pixloom.tasks.catalog import list_shipped

    return [m["name"] for m in list_shipped()]


def build(models=None, workers: int = 1, max_waiting: int = 8, report=None, device: str = "cpu"):
    """The app over ``models`` (run directories or shipped names; default: every shipped model that
    loads here: a captioner needs the caption extra)."""
    try:
        from pixloom.serve.app import create_app
    except ImportError:
        raise PixloomError(f"pixloom serve needs Starlette, Uvicorn and python-multipart: {SERVE_EXTRA}") from None
    from pixloom.tasks.service import ModelStore

    names = list(models) if models else default_models()
    if not models:  # the shipped models that this installation can run
        usable = []
        for name in names:
            try:
                ModelStore([name], device)
                usable.append(name)
            except PixloomError as exc:
                print(f"pixloom serve: not serving {name}: {exc}", file=sys.stderr)
        names = usable
    store = ModelStore(names, device)
    return create_app(store, workers=workers, max_waiting=max_waiting, report=report), store


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(models=None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, max_waiting: int = 8,
          report=None, device: str = "cpu") -> None:
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ArgumentError("port", f"must be a port number from 0 to 65535, got {port!r}")
    if not is_loopback(host):
        print(f"pixloom serve: warning: listening on {host}: anyone who can reach this machine can use the models "
              "(there is no login); the default 127.0.0.1 keeps the app on this machine", file=sys.stderr)
    app, store = build(models, workers, max_waiting, report, device)
    try:
        import uvicorn
    except ImportError:
        raise PixloomError(f"pixloom serve needs Uvicorn: {SERVE_EXTRA}") from None
    print(f"pixloom serve: {len(store.models)} model(s) ({', '.join(store.models)}) on http://{host}:{port}/",
          file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning")
