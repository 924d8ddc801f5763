"""Batch-job throughput against raw inference in a process pool, in the same run.

    .venv/bin/python bench/bench_batch.py                 # 2,000 images
    .venv/bin/python bench/bench_batch.py --images 400    # a shorter run

Makes N distinct images from the bundled photos (crops, flips, sizes, JPEG/PNG) in a temp
data directory, then measures, one after another:

1. **raw**: ``loopin.inference.Detector.builtin(...).detect`` (decode + onnxruntime + NMS,
   one onnxruntime thread each) over every file in a ``ProcessPoolExecutor`` of one process
   per core: no database, no store, no routing;
2. **batch**: a loopin batch job over the same folder with the local executor (threads,
   ``batch_workers`` = cores) on a SQLite database and the local store, with a routing rule
   (so doubtful images start loops): every image is checkpointed, logged, written as
   ``.out`` and in ``predictions.jsonl``;
3. **ray** (unless ``--no-ray``): the same job on the Ray executor, on a local Ray cluster
   started in this process (``ray.init(num_cpus=cores)``): the model as Ray tasks, the rest
   in this process;
4. **raw** again (the machine is shared: the baseline is the mean of the two raw runs).

Prints JSON with images/s of each, the ratios batch ÷ raw and ray ÷ raw, the peak RSS of
the batch process, of the pool's largest child and of the largest Ray worker, and the
machine's load average.

    .venv/bin/python bench/bench_batch.py --write-path --images 1000 --rounds 3

measures instead what the job itself costs beyond the model: the local executor with the
model replaced by a canned answer (the real model's result for one of eight images, picked
by the image's hash, so about as many images are routed), reporting the process's CPU
milliseconds per image, each round on a fresh database. Throughput ratios on two busy
cores move by several points from run to run; this figure does not depend on the model's
speed or on what else the machine runs, and resolves a tenth of a millisecond.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from unittest import mock

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from loopin import batch  # noqa: E402
from loopin.access_keys import create_key  # noqa: E402
from loopin.background import run_once  # noqa: E402
from loopin.config import Settings  # noqa: E402
from loopin.inference import DetectionResult, Detector  # noqa: E402
from loopin.schemas import RoutingRule, VariantSpec  # noqa: E402
from loopin.services import build_services  # noqa: E402
from loopin.web.server import create_app  # noqa: E402

sys.path.insert(0, str(ROOT))
from fastapi.testclient import TestClient  # noqa: E402

from tests.helpers import admin_client, setup_flow  # noqa: E402

MODEL = "nanodet-g-416-coco"
PHOTOS = [ROOT / "tests" / "data" / n for n in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "motorcycle_left.jpg")]


def make_images(folder: Path, count: int) -> list[Path]:
    bases = []
    for path in PHOTOS:
        with Image.open(path) as photo:
            bases.append(photo.convert("RGB"))
    paths = []
    for n in range(count):
        img = bases[n % len(bases)]
        round_ = n // len(bases)
        w, h = img.size
        cut = 0.02 * (round_ % 10)
        part = img.crop((int(w * cut), int(h * cut / 2), w - int(w * cut / 3), h - int(h * cut / 4)))
        if round_ % 2:
            part = ImageOps.mirror(part)
        part.thumbnail((640 - 8 * (round_ % 20), 640))
        fmt = "PNG" if n % 7 == 0 else "JPEG"
        path = folder / f"d{n % 10}" / f"img-{n:05d}.{'png' if fmt == 'PNG' else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        part.save(buf, format=fmt, **({"quality": 75 + round_ % 20} if fmt == "JPEG" else {}))
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


_detector: Detector | None = None


def _raw_init() -> None:
    global _detector
    _detector = Detector.builtin(MODEL, intra_op_num_threads=1)


def _raw_one(path: str) -> int:
    assert _detector is not None
    return len(_detector.detect(Path(path).read_bytes()).detections)


def _peak_child_kib() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def run_raw(paths: list[Path], workers: int) -> float:
    with ProcessPoolExecutor(max_workers=workers, initializer=_raw_init) as pool:
        list(pool.map(_raw_one, [str(paths[0])] * workers))  # load the model in every process
        start = time.perf_counter()
        list(pool.map(_raw_one, [str(p) for p in paths], chunksize=8))
        return time.perf_counter() - start


def ray_workers_peak_mib() -> float:
    """The largest peak RSS (VmHWM) among this machine's Ray task processes."""
    peak = 0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::"):
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return round(peak / 1024, 1)


def canned_model(paths: list[Path]) -> Callable[..., tuple[str, DetectionResult]]:
    """``endpoints.detect`` answering with the real model's result for one of eight images."""
    detector = Detector.builtin(MODEL, intra_op_num_threads=1)
    answers = [detector.detect(path.read_bytes()) for path in paths[:8]]

    def run_model(
        ctx: object, endpoint: object, image: bytes, *, variant: str | None = None
    ) -> tuple[str, DetectionResult]:
        return "AllTraffic", answers[zlib.crc32(image) % len(answers)]

    return run_model


def run_batch(
    data_dir: Path,
    folder: Path,
    workers: int,
    *,
    executor: str = "local",
    run_model: Callable[..., tuple[str, DetectionResult]] | None = None,
) -> tuple[float, dict[str, int], float]:
    """The job's wall time, its counts, and the CPU seconds this process spent on it."""
    settings = Settings(
        data_dir=data_dir,
        batch_local_roots=(str(folder),),
        secret_key="bench-" + uuid.uuid4().hex,
        batch_workers=workers,
        public_url="http://bench",
    )
    ctx = build_services(settings)
    with ctx.db.write() as s:
        key = create_key(s, secret_key=settings.secret_key, description="bench", now_ms=ctx.clock.now_ms())
    with TestClient(create_app(services=ctx, run_background=False)) as http:
        admin = admin_client(http, (key.access_key_id, key.secret_access_key))
        setup_flow(admin, workers=1)
        admin.create_endpoint_config("det-config", variants=[VariantSpec(model=MODEL, instance_count=workers)])
        admin.create_endpoint("det", config="det-config", routing=RoutingRule(flow="review", threshold=0.5))
        run_once(ctx)
    name = f"bench-{executor}"
    batch.create_job(
        ctx, endpoint_name="det", source=str(folder), output=f"s3://bench-out/{name}", name=name, executor=executor
    )
    # warm up the model host (the raw pool loads its models before its clock starts, too)
    from loopin.endpoints import get_endpoint, served

    with ctx.db.read() as s:
        served(ctx, get_endpoint(s, "det"))
    start, cpu = time.perf_counter(), time.process_time()
    if run_model is not None:
        with mock.patch.object(batch, "detect", run_model):
            status = batch.run_next(ctx, owner="bench", workers=workers)
    else:
        status = batch.run_next(ctx, owner="bench", workers=workers)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    with ctx.db.read() as s:
        done = batch.progress(s, batch.get_job(s, name))
    ctx.db.dispose()
    assert status == name and done.done + done.failed == done.total, (status, done)
    return elapsed, {"done": done.done, "failed": done.failed, "routed": done.routed}, cpu


def write_path(images: int, workers: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="loopin-bench-batch-") as tmp:
        folder = Path(tmp) / "images"
        paths = make_images(folder, images)
        run_model = canned_model(paths)
        figures = []
        for n in range(rounds):
            took, counts, cpu = run_batch(Path(tmp) / f"data-{n}", folder, workers, run_model=run_model)
            figures.append({"cpu_ms_per_image": round(1000 * cpu / images, 2), "images_per_s": round(images / took, 1)})
    result = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        "images": images,
        "workers": workers,
        "batch_counts": counts,
        "write_path_rounds": figures,
    }
    print(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-ray", action="store_true", help="Leave out the Ray executor.")
    parser.add_argument("--write-path", action="store_true", help="Only the job's own CPU, with a canned model.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of --write-path.")
    args = parser.parse_args()
    if args.write_path:
        write_path(args.images, args.workers, args.rounds)
        return
    with tempfile.TemporaryDirectory(prefix="loopin-bench-batch-") as tmp:
        data_dir = Path(tmp) / "data"
        folder = data_dir / "images"
        paths = make_images(folder, args.images)
        load_before = os.getloadavg()
        raw1 = run_raw(paths, args.workers)
        took, counts, _ = run_batch(data_dir, folder, args.workers)
        ray_took, ray_peak = None, None
        if not args.no_ray:
            import logging

            import ray

            ray.init(num_cpus=args.workers, include_dashboard=False, logging_level=logging.WARNING)
            # warm: the model shipped and loaded in each Ray worker (the raw pool loads its own first, too)
            warm = Path(tmp) / "ray-warm"
            make_images(warm / "images", 2 * args.workers)
            run_batch(warm, warm / "images", args.workers, executor="ray")
            ray_took, _, _ = run_batch(Path(tmp) / "data-ray", folder, args.workers, executor="ray")
            ray_peak = ray_workers_peak_mib()
            ray.shutdown()
        raw2 = run_raw(paths, args.workers)
        load_after = os.getloadavg()
    raw = (raw1 + raw2) / 2
    result = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        "images": args.images,
        "workers": args.workers,
        "raw_images_per_s": [round(args.images / raw1, 2), round(args.images / raw2, 2)],
        "batch_images_per_s": round(args.images / took, 2),
        "batch_over_raw": round(raw / took, 3),
        "batch_counts": counts,
        "ray_images_per_s": round(args.images / ray_took, 2) if ray_took else None,
        "ray_over_raw": round(raw / ray_took, 3) if ray_took else None,
        "peak_rss_mib_largest_ray_worker": ray_peak,
        "peak_rss_mib_batch_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_mib_raw_child": round(_peak_child_kib() / 1024, 1),
        "loadavg_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
