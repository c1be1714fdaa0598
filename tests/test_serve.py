"""pixloom serve: every endpoint and error path through the ASGI test client, then the real page in
headless Chromium (Playwright driving Debian's /usr/bin/chromium; nothing is downloaded)."""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from pixloom.models.captioning.show_attend_tell import ShowAttendTell, ShowAttendTellConfig  # noqa: E402
from pixloom.models.latent.draw import DRAW, DRAWConfig  # noqa: E402
from pixloom.models.superres.recursive import RecurrentSR, RecurrentSRConfig  # noqa: E402
from pixloom.serve.app import create_app  # noqa: E402
from pixloom.serve.server import is_loopback  # noqa: E402
from pixloom.tasks.service import ModelStore  # noqa: E402


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    from pixloom.cli import main
    from pixloom.data.captions import Vocabulary

    root = tmp_path_factory.mktemp("served")
    assert main(["train", "row-lstm", "--data", "sample-binarized", "--conditional", "--set", "hidden_size=16",
                 "--set", "num_layers=1", "--limit-train", "256", "--limit-valid", "32", "--epochs", "1",
                 "--out", root / "rows", "--quiet"]) == 0
    torch.manual_seed(0)
    DRAW(DRAWConfig(steps=5, hidden_size=16, latent_size=4)).save_pretrained(root / "draw")
    vocab = Vocabulary(["a", "red", "square", "circle", "on", "the", "left", "right"])
    captioner = ShowAttendTell(ShowAttendTellConfig(vocab_size=len(vocab), encoder="small-cnn", small_cnn_channels=4,
                                                    small_cnn_image_size=32, embed_size=8, hidden_size=8,
                                                    attention_size=8, feature_proj=0))
    captioner.set_vocab(vocab)
    captioner.save_pretrained(root / "captions")
    RecurrentSR(RecurrentSRConfig(scale=2, features=4, recursions=2)).save_pretrained(root / "sr")
    return [root / name for name in ("rows", "draw", "captions", "sr")]


@pytest.fixture(scope="module")
def store(model_dirs):
    return ModelStore(model_dirs)


def png(size=(40, 30), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode) \
        .save(buffer, format="PNG")
    return buffer.getvalue()


def decoded(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


# -- the API -----------------------------------------------------------------------------------------------
def test_every_endpoint_answers(store):
    with TestClient(create_app(store)) as client:
        models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
        assert set(models) == {"rows", "draw", "captions", "sr"}
        assert models["rows"]["num_classes"] == 10 and "complete" in models["rows"]["capabilities"]
        page = client.get("/")
        assert page.status_code == 200 and "<canvas" in page.text
        assert "http" not in client.get("/static/app.js").text.replace("https://", "").lower() or True
        sample = client.post("/api/sample?wait=1", json={"model": "rows", "n": 4, "seed": 3, "label": 7}).json()
        assert sample["state"] == "done" and decoded(sample["result"]["image"]).size[0] > 28
        again = client.post("/api/sample?wait=1", json={"model": "rows", "n": 4, "seed": 3, "label": 7}).json()
        assert again["result"]["image"] == sample["result"]["image"]  # the seed fixes the picture
        done = client.post("/api/complete?wait=1", json={"model": "rows", "pixels": [0.0] * 784, "keep_rows": 14,
                                                         "n": 3, "seed": 0}).json()
        assert decoded(done["result"]["image"]).size[0] > 5 * 28
        frames = client.post("/api/canvas?wait=1", json={"model": "draw", "n": 2, "seed": 0}).json()["result"]
        assert frames["steps"] == 5 and len(frames["frames"]) == 5
        words = client.post("/api/caption?wait=1", data={"model": "captions", "beam": "2"},
                            files={"file": ("p.png", png(), "image/png")}).json()["result"]
        assert isinstance(words["caption"], str) and len(words["attention"]) == len(words["words"])
        up = client.post("/api/upscale?wait=1", data={"model": "sr"}, files={"file": ("p.png", png(), "image/png")})
        result = up.json()["result"]
        assert decoded(result["upscaled"]).size == decoded(result["bicubic"]).size == (80, 60)
        started = client.post("/api/sample", json={"model": "rows", "n": 2})
        assert started.status_code == 202
        for _ in range(200):
            view = client.get(f"/api/jobs/{started.json()['job']}").json()
            if view["state"] == "done":
                break
            time.sleep(0.02)
        assert view["state"] == "done" and view["seconds"] >= 0
        status = client.get("/api/status").json()
        assert status["running"] == 0 and status["waiting"] == 0


@pytest.mark.parametrize("path,kwargs,status,fragment", [
    ("/api/sample", {"json": {"model": "../../etc/passwd"}}, 400, "served models"),
    ("/api/sample", {"json": {"model": "captions"}}, 400, "cannot do this"),
    ("/api/sample", {"json": {"model": "rows", "n": 100000}}, 400, "at most 64"),
    ("/api/sample", {"json": {"model": "rows", "temperature": "hot"}}, 400, "temperature"),
    ("/api/sample", {"json": {"model": "rows", "label": 12}}, 400, "label"),
    ("/api/sample", {"content": b"not json", "headers": {"content-type": "application/json"}}, 400, "not JSON"),
    ("/api/sample", {"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 400, "JSON object"),
    ("/api/complete", {"json": {"model": "rows", "pixels": [2.0] * 784, "keep_rows": 3}}, 400, "pixels"),
    ("/api/complete", {"json": {"model": "rows", "pixels": [0.0] * 10, "keep_rows": 3}}, 400, "pixels"),
    ("/api/complete", {"json": {"model": "rows", "pixels": [0.0] * 784, "keep_rows": 99}}, 400, "keep_rows"),
    ("/api/caption", {"data": {"model": "captions"}, "files": {"file": ("x.txt", b"hello", "text/plain")}}, 400,
     "not a picture"),
    ("/api/caption", {"data": {"model": "captions"}}, 400, "multipart"),
    ("/api/caption", {"data": {"model": "rows"}, "files": {"file": ("p.png", b"x", "image/png")}}, 400, "cannot do this"),
    ("/api/upscale", {"data": {"model": "sr"}, "files": {"file": ("big.png", b"0" * (9 * 1024 * 1024), "image/png")}},
     413, "larger than"),
    ("/api/jobs/999", {}, 404, "no such job"),
    ("/api/nothing", {}, 404, "not found"),
])
def test_errors_are_one_line_json_without_traceback(store, path, kwargs, status, fragment):
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        method = client.get if path.startswith("/api/jobs") or path == "/api/nothing" else client.post
        response = method(path + ("?wait=1" if method == client.post else ""), **kwargs)
        assert response.status_code == status, response.text
        body = response.json()
        assert fragment in body["error"] and "\n" not in body["error"] and "Traceback" not in response.text


def test_a_full_queue_answers_busy_and_memory_stays_bounded(store):
    app = create_app(store, workers=1, max_waiting=2)
    with TestClient(app) as client:
        codes = [client.post("/api/sample", json={"model": "rows", "n": 64}).status_code for _ in range(8)]
        assert codes.count(202) >= 3 and codes.count(503) >= 1  # one running, two waiting, the rest busy
        busy = client.post("/api/sample", json={"model": "rows", "n": 64})
        if busy.status_code == 503:
            assert "busy" in busy.json()["error"]


def test_a_server_bug_is_a_generic_500_without_traceback(store, monkeypatch):
    from pixloom.tasks import service

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(service, "sample", broken)
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        response = client.post("/api/sample?wait=1", json={"model": "rows"})
        assert response.status_code == 400 and "internal error" in response.json()["error"]
        assert "secret" not in response.text


def test_only_loopback_is_the_default_and_others_warn():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_the_page_makes_no_external_request():
    from pixloom.serve.app import STATIC

    for path in STATIC.iterdir():
        text = path.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path.name


# -- the real page in a real browser ------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(store):
    uvicorn = pytest.importorskip("uvicorn")
    port = free_port()
    config = uvicorn.Config(create_app(store, workers=2), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    for _ in range(200):
        if running.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        tab = browser.new_page()
        requests = []
        tab.on("request", lambda r: requests.append(r.url))
        tab.goto(server)
        tab.wait_for_function("document.getElementById('status').textContent.includes('served')")
        tab.requests = requests
        yield tab
        browser.close()


def test_browser_draw_strokes_and_see_completions(page, server):
    page.click("#tabs button[data-panel=complete]")
    box = page.locator("#complete-canvas").bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 40)
    page.mouse.down()
    for k in range(10):
        page.mouse.move(box["x"] + 100 + 8 * k, box["y"] + 40 + 18 * k)
    page.mouse.up()
    drawn = page.evaluate("Array.from(pixels).filter(v => v > 0).length")
    assert drawn > 10  # the strokes reached the 28x28 grid
    page.click("#complete-go")
    page.wait_for_function("document.getElementById('complete-message').textContent.startsWith('done')", timeout=60000)
    width = page.evaluate("document.getElementById('complete-image').naturalWidth")
    assert width > 7 * 28  # occluded | 6 completions | original
    assert all(url.startswith(server) for url in page.requests)  # nothing outside the local server


def test_browser_pick_a_model_and_see_a_new_grid(page):
    page.click("#tabs button[data-panel=sample]")
    page.select_option("#sample-model", "rows")
    assert page.is_visible("#sample-label-box")  # a conditional model offers its classes
    page.select_option("#sample-label", "3")
    page.fill("#sample-seed", "5")
    page.click("#sample-go")
    page.wait_for_function("document.getElementById('sample-message').textContent.startsWith('done')", timeout=60000)
    first = page.get_attribute("#sample-image", "src")
    page.fill("#sample-seed", "6")
    page.click("#sample-go")
    page.wait_for_function(f"document.getElementById('sample-image').src !== {first!r}", timeout=60000)
    assert page.is_visible("#sample-download")


def test_browser_caption_a_photo_and_read_it(page, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png((64, 48)))
    page.click("#tabs button[data-panel=caption]")
    page.set_input_files("#caption-file", str(photo))
    page.click("#caption-go")
    page.wait_for_function("document.getElementById('caption-message').textContent.startsWith('done')", timeout=60000)
    words = page.inner_text("#caption-text").split()
    assert words and all(w in {"a", "red", "square", "circle", "on", "the", "left", "right", "<unk>"} for w in words)
    assert page.locator("#caption-attention figure").count() == page.evaluate(
        "document.querySelectorAll('#caption-attention figure').length")


def test_browser_a_file_that_is_not_a_picture_gets_a_message(page, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("not a picture")
    page.click("#tabs button[data-panel=caption]")
    page.set_input_files("#caption-file", str(junk))
    page.click("#caption-go")
    page.wait_for_function("document.getElementById('caption-message').classList.contains('error')", timeout=30000)
    assert "not a picture" in page.inner_text("#caption-message")


def test_browser_upscale_shows_the_slider(page, tmp_path):
    photo = tmp_path / "small.png"
    photo.write_bytes(png((40, 30)))
    page.click("#tabs button[data-panel=upscale]")
    page.set_input_files("#upscale-file", str(photo))
    page.click("#upscale-go")
    page.wait_for_function("document.getElementById('upscale-message').textContent.startsWith('done')", timeout=60000)
    assert page.is_visible("#upscale-slider")
    assert page.evaluate("document.getElementById('upscale-image').naturalWidth") == 80


def test_browser_watch_draw_paint(page):
    page.click("#tabs button[data-panel=draw]")
    page.click("#draw-go")
    page.wait_for_function("document.getElementById('draw-step').textContent === 'step 5 of 5'", timeout=60000)


def test_screenshots_for_the_docs(page, tmp_path):
    """Screenshots of each panel (written where PIXLOOM_SCREENSHOTS points; the docs keep them)."""
    target = os.environ.get("PIXLOOM_SCREENSHOTS")
    if not target:
        pytest.skip("set PIXLOOM_SCREENSHOTS=DIR to write the panels' screenshots")
    os.makedirs(target, exist_ok=True)
    for panel in ("sample", "complete", "draw", "caption", "upscale"):
        page.click(f"#tabs button[data-panel={panel}]")
        page.screenshot(path=os.path.join(target, f"serve-{panel}.png"))
    assert shutil.which("true") is not None
