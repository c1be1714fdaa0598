"""Load test of ``pixloom serve`` on loopback, and screenshots of its panels for the docs.

    python bench/bench_serve.py load --models mnist-draw flickr8k-captioner --out bench/results/serve-load.json
    python bench/bench_serve.py screenshots --models mnist-pixelrnn mnist-draw flickr8k-captioner photo-sr-x2 \
        mnist-mlp-gan --report docs/comparison/mnist.md --out docs/img

``load`` starts the app in this process (uvicorn in a thread, 127.0.0.1, a free port) and, for 1, 4 and
16 concurrent clients, sends ``--requests`` requests of each kind (sampling 16 images from the first
model; captioning a photo with the second), each waiting for its result: requests/s, p50 and p95
latency, and the share answered "busy" (503). Then 1,000 requests more, and the resident memory
before and after them. ``screenshots`` drives the page in headless Chromium and saves a PNG per panel.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import io
import os
import platform
import resource
import socket
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start(models, workers=1, max_waiting=32, report=None):
    import uvicorn

    from pixloom.serve.server import build

    app, store = build(models, workers=workers, max_waiting=max_waiting, report=report)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}", store


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def photo_bytes() -> bytes:
    import numpy as np
    from PIL import Image

    path = ROOT / "docs/img/caption-dev-02.jpg"
    if path.is_file():
        return path.read_bytes()
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def load(models: list[str], requests: int, workers: int) -> dict:
    import httpx

    server, url, store = start(models, workers=workers)
    sampler = next(k for k, m in store.models.items() if "sample" in [c for c in _caps(m)])
    captioner = next((k for k, m in store.models.items() if "caption" in _caps(m)), None)
    picture = photo_bytes()

    def one(kind: str) -> tuple[float, int]:
        started = time.perf_counter()
        with httpx.Client(timeout=300) as client:
            if kind == "sample":
                response = client.post(f"{url}/api/sample?wait=1", json={"model": sampler, "n": 16, "seed": 0})
            else:
                response = client.post(f"{url}/api/caption?wait=1", data={"model": captioner, "beam": "3"},
                                       files={"file": ("photo.jpg", picture, "image/jpeg")})
        return time.perf_counter() - started, response.status_code

    out = {"models": list(store.models), "workers": workers, "sampling": sampler, "captioning": captioner, "runs": []}
    kinds = ["sample"] + (["caption"] if captioner else [])
    for kind in kinds:
        one(kind)  # warm-up (the captioner builds its encoder on first use)
        for clients in (1, 4, 16):
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                results = list(pool.map(lambda _: one(kind), range(requests)))
            seconds = time.perf_counter() - started
            ok = sorted(t for t, code in results if code == 200)
            busy = sum(1 for _, code in results if code == 503)
            row = {"kind": kind, "clients": clients, "requests": requests, "ok": len(ok), "busy_503": busy,
                   "requests_per_second": round(len(ok) / seconds, 2),
                   "p50_seconds": round(ok[len(ok) // 2], 3) if ok else None,
                   "p95_seconds": round(ok[min(len(ok) - 1, int(len(ok) * 0.95))], 3) if ok else None}
            out["runs"].append(row)
            print(row, file=sys.stderr)
    before = rss_mb()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda k: one(kinds[k % len(kinds)])[1], range(1000)))
    out["memory"] = {"rss_before_1000_requests_mb": round(before, 1), "rss_after_mb": round(rss_mb(), 1),
                     "requests": 1000, "ok": codes.count(200)}
    print(out["memory"], file=sys.stderr)
    server.should_exit = True
    return out


def _caps(model) -> list[str]:
    from pixloom.models.capabilities import capabilities_of

    return capabilities_of(model)


def screenshots(models: list[str], folder: Path, report: str | None = None) -> list[str]:
    from playwright.sync_api import sync_playwright

    server, url, store = start(models, workers=2, report=report)
    folder.mkdir(parents=True, exist_ok=True)
    photo = ROOT / "docs/img/caption-dev-02.jpg"
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(url)
        page.wait_for_function("document.getElementById('status').textContent.includes('served')")

        def done(message_id):
            page.wait_for_function(f"document.getElementById('{message_id}').textContent.startsWith('done')",
                                   timeout=300000)

        page.fill("#sample-n", "32")
        page.click("#sample-go")
        done("sample-message")
        page.screenshot(path=str(folder / "serve-sample.png"))
        page.click("#tabs button[data-panel=complete]")
        box = page.locator("#complete-canvas").bounding_box()
        page.mouse.move(box["x"] + 110, box["y"] + 50)
        page.mouse.down()
        for k in range(16):
            page.mouse.move(box["x"] + 110 + 40 * __import__("math").sin(k / 2.5), box["y"] + 50 + 12 * k)
        page.mouse.up()
        page.click("#complete-go")
        done("complete-message")
        page.screenshot(path=str(folder / "serve-complete.png"))
        page.click("#tabs button[data-panel=draw]")
        page.click("#draw-go")
        page.wait_for_timeout(2500)
        page.screenshot(path=str(folder / "serve-draw.png"))
        if photo.is_file() and any("caption" in _caps(m) for m in store.models.values()):
            page.click("#tabs button[data-panel=caption]")
            page.set_input_files("#caption-file", str(photo))
            page.click("#caption-go")
            done("caption-message")
            page.screenshot(path=str(folder / "serve-caption.png"), full_page=True)
        if any("upscale" in _caps(m) for m in store.models.values()):
            page.click("#tabs button[data-panel=upscale]")
            page.set_input_files("#upscale-file", str(photo))
            page.click("#upscale-go")
            done("upscale-message")
            page.screenshot(path=str(folder / "serve-upscale.png"), full_page=True)
        if report:
            page.click("#tabs button[data-panel=compare]")
            page.wait_for_selector("#compare-table table")
            page.screenshot(path=str(folder / "serve-compare.png"), full_page=True)
        browser.close()
    server.should_exit = True
    saved = sorted(p.name for p in folder.glob("serve-*.png"))
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["load", "screenshots"])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--requests", type=int, default=32, help="load: requests per kind and concurrency")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--report", help="screenshots: a pixloom compare report for the Compare panel")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.what == "screenshots":
        print(screenshots(args.models, Path(args.out), args.report))
        return
    result = load(args.models, args.requests, args.workers)
    from pixloom.io import atomic_write_json

    atomic_write_json(args.out, {"benchmark": "serve-load", "command": " ".join(["python", "bench/bench_serve.py"]
                                                                               + sys.argv[1:]),
                                 "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                                 "platform": platform.platform(), "cpu_count": os.cpu_count(),
                                 "threads": os.environ.get("OMP_NUM_THREADS"), **result})


if __name__ == "__main__":
    main()
