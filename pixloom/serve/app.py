"""``pixloom serve``: a local web app (Starlette) over :mod:`pixloom.tasks.service`.

The page (``static/``: plain HTML, CSS and JavaScript, no external request of any kind) and a JSON API
that the page uses and a script can call:

    GET  /api/models                    the served models and what each can do
    POST /api/sample    JSON            {"model", "n", "temperature", "seed", "label"}
    POST /api/complete  JSON            {"model", "pixels" (H*W floats in [0, 1]), "keep_rows" | "mask", "n", "seed"}
    POST /api/canvas    JSON            {"model", "n", "seed"}            (DRAW: the canvas step by step)
    POST /api/caption   multipart       model, beam, file
    POST /api/upscale   multipart       model, file
    GET  /api/jobs/ID                   a job's state, queue position, seconds, and its result when done
    GET  /api/status                    running and waiting jobs, and the limits

Every POST creates a job and answers 202 with its id (or, with ``?wait=1``, waits and answers the result).
Jobs run one or two at a time in worker threads, so a slow one never blocks the page; at most
``max_waiting`` wait, and one more is answered 503 "busy" at once. Finished jobs are kept for a minute
(at most 200). Errors are JSON ``{"error": "<one line>"}``; a traceback never reaches a response.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pixloom.errors import PixloomError
from pixloom.tasks import service

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("pixloom.serve")


def b64png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


class Jobs:
    """A bounded queue of work: ``workers`` threads, at most ``max_waiting`` jobs waiting."""

    def __init__(self, workers: int = 1, max_waiting: int = 8, keep_seconds: float = 60.0, keep_jobs: int = 200):
        self.semaphore = asyncio.Semaphore(workers)
        self.workers, self.max_waiting = workers, max_waiting
        self.keep_seconds, self.keep_jobs = keep_seconds, keep_jobs
        self.jobs: OrderedDict[str, dict] = OrderedDict()
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    def waiting(self) -> list[str]:
        return [k for k, j in self.jobs.items() if j["state"] == "waiting"]

    def running(self) -> int:
        return sum(1 for j in self.jobs.values() if j["state"] == "running")

    def _forget_old(self) -> None:
        now = time.monotonic()
        for key in [k for k, j in self.jobs.items() if j["state"] in ("done", "error")
                    and now - j["finished"] > self.keep_seconds]:
            del self.jobs[key]
        while len(self.jobs) > self.keep_jobs:
            oldest = next((k for k, j in self.jobs.items() if j["state"] in ("done", "error")), None)
            if oldest is None:
                break
            del self.jobs[oldest]

    def submit(self, kind: str, work) -> str | None:
        """A new job's id, or None when the queue is full."""
        self._forget_old()
        if len(self.waiting()) >= self.max_waiting:
            return None
        key = str(next(self.ids))
        job = {"id": key, "kind": kind, "state": "waiting", "created": time.monotonic(), "started": None,
               "finished": None, "result": None, "error": None}
        self.jobs[key] = job
        job["task"] = asyncio.get_running_loop().create_task(self._run(job, work))
        return key

    async def _run(self, job: dict, work) -> None:
        async with self.semaphore:
            job["state"], job["started"] = "running", time.monotonic()
            try:
                job["result"] = await asyncio.to_thread(work)
                job["state"] = "done"
            except PixloomError as exc:
                job["error"], job["state"] = str(exc), "error"
            except Exception:  # a bug: logged for the operator, never sent to the page
                log.exception("job %s (%s) failed", job["id"], job["kind"])
                job["error"], job["state"] = "internal error (see the server's log)", "error"
            finally:
                job["finished"] = time.monotonic()

    def view(self, key: str) -> dict | None:
        job = self.jobs.get(key)
        if job is None:
            return None
        now = time.monotonic()
        out = {"id": key, "kind": job["kind"], "state": job["state"],
               "seconds": round((job["finished"] or now) - (job["started"] or job["created"]), 2)}
        if job["state"] == "waiting":
            out["ahead"] = self.waiting().index(key) + self.running()
        if job["state"] == "done":
            out["result"] = job["result"]
        if job["state"] == "error":
            out["error"] = job["error"]
        return out


def error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(store: service.ModelStore, workers: int = 1, max_waiting: int = 8,
               max_upload_bytes: int = 8 * 1024 * 1024, report: str | None = None) -> Starlette:
    jobs = Jobs(workers, max_waiting)
    report_text = Path(report).read_text() if report else None

    async def read_json(request: Request) -> dict:
        body = await limited_body(request)
        try:
            value = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise PixloomError("the request body is not JSON") from None
        if not isinstance(value, dict):
            raise PixloomError("the request body must be a JSON object")
        return value

    async def limited_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_upload_bytes):
            raise Upload413(max_upload_bytes)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_upload_bytes:
                raise Upload413(max_upload_bytes)
        return bytes(body)

    async def read_form(request: Request) -> tuple[dict, bytes]:
        kind = request.headers.get("content-type", "")
        if not kind.startswith("multipart/form-data"):
            raise PixloomError("send the picture as multipart/form-data with a 'file' field")
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit() or int(declared) > max_upload_bytes:
            raise Upload413(max_upload_bytes)
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise PixloomError("the form has no 'file'")
        data = await upload.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise Upload413(max_upload_bytes)
        return {k: v for k, v in form.items() if isinstance(v, str)}, data

    def integer(value, name):
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise PixloomError(f"{name} must be a whole number")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise PixloomError(f"{name} must be a whole number, got {str(value)[:40]!r}") from None
        if isinstance(value, float) and not value.is_integer():
            raise PixloomError(f"{name} must be a whole number, got {value}")
        return number

    def number(value, name, default):
        if value is None or value == "":
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise PixloomError(f"{name} must be a number, got {str(value)[:40]!r}") from None

    async def submit(request: Request, kind: str, work):
        key = jobs.submit(kind, work)
        if key is None:
            return error(f"busy: {len(jobs.waiting())} requests are waiting; try again in a moment", 503)
        if request.query_params.get("wait") in ("1", "true"):
            await jobs.jobs[key]["task"]
            view = jobs.view(key)
            return JSONResponse(view, status_code=200 if view["state"] == "done" else 400)
        return JSONResponse({"job": key, "state": "waiting"}, status_code=202)

    # -- endpoints ---------------------------------------------------------------------------------------
    async def index(request):
        return FileResponse(STATIC / "index.html")

    async def models(request):
        return JSONResponse({"models": store.info(), "report": report_text is not None})

    async def status(request):
        return JSONResponse({"running": jobs.running(), "waiting": len(jobs.waiting()), "workers": jobs.workers,
                             "max_waiting": jobs.max_waiting, "max_upload_bytes": max_upload_bytes,
                             "limits": service.LIMITS})

    async def job(request):
        view = jobs.view(request.path_params["key"])
        return JSONResponse(view) if view is not None else error("no such job (finished jobs are kept a minute)", 404)

    async def sample(request):
        body = await read_json(request)
        store.get(body.get("model"), service.Sampler)  # an unknown model is refused at once
        args = dict(model=body.get("model"), n=integer(body.get("n", 16), "n"),
                    temperature=number(body.get("temperature"), "temperature", 1.0),
                    seed=integer(body.get("seed"), "seed"), label=integer(body.get("label"), "label"))

        def work():
            out = service.sample(store, **args)
            return {"image": b64png(out["png"]), "seed": out["seed"], "n": out["n"]}

        return await submit(request, "sample", work)

    async def complete(request):
        body = await read_json(request)
        store.get(body.get("model"), service.Completer)
        args = dict(model=body.get("model"), pixels=body.get("pixels"), keep_rows=integer(body.get("keep_rows"), "keep_rows"),
                    mask=body.get("mask"), n=integer(body.get("n", 6), "n"), seed=integer(body.get("seed"), "seed"),
                    temperature=number(body.get("temperature"), "temperature", 1.0))

        def work():
            out = service.complete(store, **args)
            return {"image": b64png(out["png"]), "seed": out["seed"], "n": out["n"]}

        return await submit(request, "complete", work)

    async def canvas(request):
        body = await read_json(request)
        store.get(body.get("model"), service.CanvasSampler)
        args = dict(model=body.get("model"), n=integer(body.get("n", 4), "n"), seed=integer(body.get("seed"), "seed"))

        def work():
            out = service.canvas(store, **args)
            return {"frames": [b64png(f) for f in out["frames"]], "steps": out["steps"], "seed": out["seed"]}

        return await submit(request, "canvas", work)

    async def caption(request):
        fields, data = await read_form(request)
        store.get(fields.get("model"), service.Captioning)
        picture = await asyncio.to_thread(service.decode_picture, data)  # not a picture: refused at once
        args = dict(model=fields.get("model"), picture=picture, beam=integer(fields.get("beam", 3), "beam"))

        def work():
            out = service.caption(store, **args)
            return {"caption": out["caption"], "words": out["words"], "attention": [b64png(a) for a in out["attention"]]}

        return await submit(request, "caption", work)

    async def upscale(request):
        fields, data = await read_form(request)
        store.get(fields.get("model"), service.Upscaler)
        picture = await asyncio.to_thread(service.decode_picture, data)
        args = dict(model=fields.get("model"), picture=picture)

        def work():
            out = service.upscale(store, **args)
            return {"upscaled": b64png(out["upscaled"]), "bicubic": b64png(out["bicubic"]), "size": out["size"],
                    "scale": out["scale"]}

        return await submit(request, "upscale", work)

    async def compare(request):
        if report_text is None:
            return error("no comparison report is served (start pixloom serve with --report REPORT.md)", 404)
        return JSONResponse({"markdown": report_text})

    async def on_pixloom_error(request, exc):
        return error(str(exc))

    async def on_too_large(request, exc):
        return error(str(exc), 413)

    async def on_other(request, exc):
        log.exception("request %s failed", request.url.path)
        return error("internal error (see the server's log)", 500)

    async def not_found(request, exc):
        return error("not found", getattr(exc, "status_code", 404))

    routes = [
        Route("/", index), Route("/api/models", models), Route("/api/status", status),
        Route("/api/jobs/{key}", job), Route("/api/sample", sample, methods=["POST"]),
        Route("/api/complete", complete, methods=["POST"]), Route("/api/canvas", canvas, methods=["POST"]),
        Route("/api/caption", caption, methods=["POST"]), Route("/api/upscale", upscale, methods=["POST"]),
        Route("/api/compare", compare), Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {PixloomError: on_pixloom_error, Upload413: on_too_large, 404: not_found, 405: not_found,
                Exception: on_other}
    return Starlette(routes=routes, exception_handlers=handlers)


class Upload413(PixloomError):
    def __init__(self, limit: int):
        super().__init__(f"the request is larger than the {limit:,} bytes allowed")
