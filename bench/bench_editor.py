#!/usr/bin/env python
"""Worker console benchmark: the bounding-box editor in headless Chromium, and the server's
time to render a task page.

    .venv/bin/python bench/bench_editor.py            # full run (one to two minutes)
    .venv/bin/python bench/bench_editor.py --quick    # smoke check

Needs Debian's Chromium (scripts/install-browser.sh). Against a live loopin server (SQLite,
local store) started in this process, it measures:

1. drawn   navigation to the task page -> the editor has drawn its 1,000 initial boxes
           (``data-drawn``: drawn as soon as the photo's size is known) -> the decoded photo
           under them (``data-image-drawn``), with the frame's own milestones. Each run uses
           a fresh browser context (cold cache). The photo is a real one scaled to 6000x4000.
2. drag    one box among the 1,000 is dragged with mouse moves sent through the DevTools
           protocol at a steady 125 Hz for 4 s, each sent on schedule without waiting for
           the previous one to be handled; frame times are sampled with
           requestAnimationFrame inside the task frame (headless Chromium caps at 60 fps).
           Also the time from the release to the next frame. Three drags, of three boxes.
3. render  GET of the task frame (session check, database read, Liquid render, response)
           for a loop whose InputContent is 1 MiB, one request at a time; and
           ``render_task`` alone, in-process.

Each phase also reports ``other_cores``: the cores other work on the machine used meanwhile
(the machine's busy time minus this process tree's). Results are printed and written to
bench/results/editor-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Frame, Page, async_playwright

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from loopin.loops import get_loop  # noqa: E402
from loopin.rendering import render_task  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, Live, live_server  # noqa: E402
from tests.test_console_browser import WALKTHROUGH  # noqa: E402

PHOTO_URI = "s3://bench-bucket/images/large.jpg"
LABELS = ["car", "truck", "bus", "bicycle", "person", "motorcycle"]
BOX = "crowd-bounding-box"
VIEWPORT = {"width": 1440, "height": 900}


def large_photo() -> bytes:
    """A real photograph (scikit-image's CC0 coffee cup, tests/data) scaled to 6000x4000."""
    image = Image.open(ROOT / "tests" / "data" / "coffee.jpg").convert("RGB")
    out = io.BytesIO()
    image.resize((6000, 4000), Image.Resampling.LANCZOS).save(out, "JPEG", quality=90)
    return out.getvalue()


def random_boxes(count: int, *, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        w, h = rng.randint(40, 600), rng.randint(40, 600)
        result.append(
            {"label": rng.choice(LABELS), "left": rng.randint(0, 6000 - w), "top": rng.randint(0, 4000 - h)}
            | {"width": w, "height": h}
        )
    return result


class OtherLoad:
    """How many cores other work on the machine used during a phase: the machine's busy time
    minus that of this process and its descendants (the Playwright driver and Chromium)."""

    def __init__(self) -> None:
        self.start = (self._machine_busy(), self._mine(), time.monotonic())

    @staticmethod
    def _machine_busy() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait

    @staticmethod
    def _mine() -> float:
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        tree = {os.getpid()}
        for _ in range(6):  # descendants, a few generations deep
            tree |= {pid for pid, (parent, _) in stats.items() if parent in tree}
        return sum(stats[pid][1] for pid in tree if pid in stats) / os.sysconf("SC_CLK_TCK")

    def cores(self) -> float:
        busy, mine, t = self._machine_busy(), self._mine(), time.monotonic()
        return round(((busy - self.start[0]) - (mine - self.start[1])) / (t - self.start[2]), 2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def setup(live: Live) -> int:
    """Two jobs: 1,000 boxes to edit, and a loop with 1 MiB of InputContent; its size."""
    admin = live.admin
    admin.create_team("Bench", description="Benchmark")
    for email in ("editor@bench.example", "render@bench.example"):
        admin.create_worker(email, teams=["Bench"], password=PASSWORD)
    admin.create_task_ui("walkthrough", template=WALKTHROUGH)
    for flow in ("editor", "render"):
        admin.create_flow(
            flow,
            team="Bench",
            task_ui="walkthrough",
            title=f"Benchmark {flow}",
            description="Boxes on a large photo",
            output_path="s3://bench-bucket/out",
            time_limit_seconds=3600,
        )
    editor = {"taskObject": PHOTO_URI, "labels": LABELS, "initialValue": random_boxes(1000, seed=1)}
    admin.start_loop("editor-1000-boxes", flow="editor", input=editor)
    big = {"taskObject": PHOTO_URI, "labels": LABELS, "initialValue": random_boxes(16_000, seed=2)}
    admin.start_loop("render-1mib", flow="render", input=big)
    return len(json.dumps(big, separators=(",", ":")))


async def claim(browser: Browser, live: Live, email: str, job: str) -> tuple[str, list[Any]]:
    """Sign in, press Start working; the task's URL and the session cookies."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(live.url + "/worker/sign-in")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button:has-text('Sign in')")
    await page.wait_for_url("**/worker/jobs")
    await page.click(f".job:has-text('{job}') button")
    await page.wait_for_url("**/worker/tasks/*")
    url, cookies = page.url, await context.cookies()
    await context.close()
    return url, cookies


async def open_task(browser: Browser, cookies: list[Any], url: str) -> tuple[BrowserContext, Page, Frame]:
    context = await browser.new_context(viewport=VIEWPORT)
    await context.add_cookies(cookies)
    page = await context.new_page()
    await page.goto(url)
    handle = await page.wait_for_selector("#task-frame")
    frame = await handle.content_frame()
    assert frame is not None
    await frame.wait_for_selector(f"{BOX}[data-image-drawn]", timeout=60_000)
    return context, page, frame


async def measure_drawn(browser: Browser, cookies: list[Any], url: str, runs: int) -> list[dict[str, float]]:
    results = []
    for _ in range(runs):
        context, page, frame = await open_task(browser, cookies, url)
        origin = await page.evaluate("performance.timeOrigin")
        # Milestones inside the frame, in ms since the top page's navigation started.
        marks = await frame.evaluate(
            f"""() => {{
                const el = document.querySelector('{BOX}');
                const nav = performance.getEntriesByType('navigation')[0];
                const image = performance.getEntriesByType('resource').find((e) => e.name.includes('/store/'));
                const at = (t) => performance.timeOrigin + t;
                return {{
                    boxes: el.boxes.length,
                    frame_html: at(nav.responseEnd),
                    frame_parsed: at(nav.domContentLoadedEventEnd),
                    image_loaded: at(image.responseEnd),
                    boxes_drawn: el.drawnAt,
                    photo_drawn: el.imageDrawnAt,
                }};
            }}"""
        )
        assert marks.pop("boxes") == 1000
        results.append({name: round(value - origin, 1) for name, value in marks.items()})
        await context.close()
    return results


async def measure_drag(browser: Browser, cookies: list[Any], url: str, seconds: float, nth: int) -> dict[str, Any]:
    context, page, frame = await open_task(browser, cookies, url)
    # The nth box near the middle whose centre selects it (the smallest box under a point wins).
    index, cx, cy = await frame.evaluate(
        f"""(nth) => {{
            const el = document.querySelector('{BOX}');
            for (let i = 0; i < el.boxes.length; i++) {{
                const b = el.boxes[i], p = {{x: b.left + b.width / 2, y: b.top + b.height / 2}};
                const central = Math.abs(p.x - 3000) < 1200 && Math.abs(p.y - 2000) < 800;
                if (central && el._boxAt(p) === i && nth-- === 0) return [i, p.x, p.y];
            }}
        }}""",
        nth,
    )
    box = await page.locator("#task-frame").bounding_box()
    assert box is not None
    local = await frame.evaluate(
        f"""([x, y]) => {{
            const el = document.querySelector('{BOX}'), r = el.stage.getBoundingClientRect();
            return [r.left + el.view.x + x * el.view.scale, r.top + el.view.y + y * el.view.scale];
        }}""",
        [cx, cy],
    )
    x0, y0 = box["x"] + local[0], box["y"] + local[1]
    before = await frame.evaluate(f"document.querySelector('{BOX}').boxes[{index}]")
    cdp = await context.new_cdp_session(page)

    async def mouse(kind: str, x: float, y: float) -> None:
        event = {"type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1}
        await cdp.send("Input.dispatchMouseEvent", event)

    await mouse("mouseMoved", x0, y0)
    await mouse("mousePressed", x0, y0)  # a click selects the box: only a selected box moves
    await mouse("mouseReleased", x0, y0)
    await mouse("mousePressed", x0, y0)
    await frame.evaluate(
        """() => {
            window.__frames = [];
            const tick = (t) => { window.__frames.push(t); window.__raf = requestAnimationFrame(tick); };
            window.__raf = requestAnimationFrame(tick);
        }"""
    )
    moves = int(seconds * 125)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    sent = []
    lateness = []
    for i in range(1, moves + 1):
        delay = t0 + i / 125 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lateness.append(max(0.0, -delay) * 1000)
        angle = i / moves * 3.5 * math.pi  # 1.75 slow turns of a 150 px circle
        x, y = x0 + 150 * (1 - math.cos(angle)), y0 + 150 * math.sin(angle)
        sent.append(asyncio.ensure_future(mouse("mouseMoved", x, y)))
    send_seconds = loop.time() - t0
    await asyncio.gather(*sent)
    await mouse("mouseReleased", x, y)
    release_ms = await frame.evaluate(
        """() => new Promise((done) => {
            const t = performance.now();
            requestAnimationFrame(() => done(performance.now() - t));
        })"""
    )
    await page.wait_for_timeout(200)
    samples = await frame.evaluate("cancelAnimationFrame(window.__raf), window.__frames")
    after = await frame.evaluate(f"document.querySelector('{BOX}').boxes[{index}]")
    await context.close()
    assert after != before, "the dragged box did not move"
    # Frames from the first move to the release.
    frames = [b - a for a, b in zip(samples, samples[1:], strict=False)][: int(seconds * 60)]
    return {
        "moves_sent": moves,
        "send_seconds": round(send_seconds, 3),
        "send_late_ms_max": round(max(lateness), 1),
        "frames": len(frames),
        "frame_ms_median": round(statistics.median(frames), 2),
        "frame_ms_p95": round(percentile(frames, 95), 2),
        "frame_ms_max": round(max(frames), 2),
        "frames_over_50ms": sum(1 for f in frames if f > 50),
        "fps_median": round(1000 / statistics.median(frames), 1),
        "fps_p5": round(1000 / percentile(frames, 95), 1),
        "next_frame_after_release_ms": round(release_ms, 1),
    }


def measure_render(live: Live, cookies: list[Any], url: str, requests: int) -> dict[str, Any]:
    jar = httpx.Cookies()
    for cookie in cookies:
        jar.set(cookie["name"], cookie["value"], path=cookie["path"])
    over_http = []
    with httpx.Client(base_url=live.url, cookies=jar, timeout=60) as http:
        for _ in range(requests):
            t = time.perf_counter()
            response = http.get(url.removeprefix(live.url) + "/frame")
            over_http.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200 and BOX in response.text
    with live.services.db.read() as session:
        task_input = json.loads(get_loop(session, "render-1mib").input_content)
    direct = []
    for _ in range(requests):
        t = time.perf_counter()
        render_task(WALKTHROUGH, task_input, grant_read_access=lambda uri: "https://signed.example/" + uri)
        direct.append((time.perf_counter() - t) * 1000)
    return {
        "requests": requests,
        "http_ms_p50": round(percentile(over_http, 50), 1),
        "http_ms_p99": round(percentile(over_http, 99), 1),
        "render_task_ms_p50": round(percentile(direct, 50), 1),
        "render_task_ms_p99": round(percentile(direct, 99), 1),
        "page_bytes": len(response.content),
    }


def machine(browser: Browser) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": models[0] if models else platform.processor(),
        "cores": len(models),
        "load_average_at_end": Path("/proc/loadavg").read_text().split()[:3],
        "python": platform.python_version(),
        "chromium": browser.version,
        "platform": platform.platform(),
    }


async def run(quick: bool) -> dict[str, Any]:
    runs, drag_seconds, drag_runs, requests = (2, 1.0, 1, 20) if quick else (7, 4.0, 3, 200)
    with tempfile.TemporaryDirectory() as tmp, live_server(Path(tmp) / "data") as live:
        live.services.store.put(PHOTO_URI, large_photo(), content_type="image/jpeg")
        input_bytes = setup(live)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            editor_url, editor_cookies = await claim(browser, live, "editor@bench.example", "Benchmark editor")
            render_url, render_cookies = await claim(browser, live, "render@bench.example", "Benchmark render")
            load = OtherLoad()
            drawn = await measure_drawn(browser, editor_cookies, editor_url, runs)
            drawn_others = load.cores()
            drags = []
            for n in range(drag_runs):
                load = OtherLoad()
                drags.append(await measure_drag(browser, editor_cookies, editor_url, drag_seconds, n))
                drags[-1]["other_cores"] = load.cores()
            load = OtherLoad()
            render = measure_render(live, render_cookies, render_url, requests)
            render["other_cores"] = load.cores()
            result = {
                "machine": machine(browser),
                "drawn": {
                    "runs": drawn,
                    "boxes_median_ms": statistics.median(r["boxes_drawn"] for r in drawn),
                    "boxes_max_ms": max(r["boxes_drawn"] for r in drawn),
                    "photo_median_ms": statistics.median(r["photo_drawn"] for r in drawn),
                    "photo_max_ms": max(r["photo_drawn"] for r in drawn),
                    "other_cores": drawn_others,
                },
                "drag": {
                    "runs": drags,
                    "fps_median": statistics.median(d["fps_median"] for d in drags),
                    "frame_ms_max": max(d["frame_ms_max"] for d in drags),
                    "frames_over_50ms": sum(d["frames_over_50ms"] for d in drags),
                },
                "render": render | {"input_content_bytes": input_bytes},
            }
            await browser.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Bounding-box editor and task page benchmark.")
    parser.add_argument("--quick", action="store_true", help="fewer runs and a shorter drag")
    result = asyncio.run(run(parser.parse_args().quick))
    print(json.dumps(result, indent=2))
    out = HERE / "results" / f"editor-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
