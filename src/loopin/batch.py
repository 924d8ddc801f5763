"""Batch jobs: an endpoint's model over every image of a source (an S3 prefix listed through
the store, a local folder inside an allowed root, or a manifest), each image through
``invocations.prepare`` and the write it returns, several images' writes in one
transaction (so the routing rule applies and doubtful images start human loops), its
answer written as ``<output>/<key>.out`` (SageMaker Batch Transform's layout) and, when
the job ends, every answer in ``<output>/predictions.jsonl``.

Every image has a checkpoint row. An image is invoked with an idempotency key derived from
the job and the image, so a job run again, or resumed after a crash, starts no second loop
and runs no finished image again. One server process works on a job at a time: it holds a
lease in the database, renewed while it works; when a process dies its lease runs out and
another takes the job over where the checkpoints say.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from loopin import batch_ray
from loopin.endpoints import detect, get_endpoint
from loopin.errors import ConflictError, LoopinError, NotFoundError, StoreUnavailableError, ValidationError
from loopin.invocations import MAX_BODY_BYTES, Invocation, ModelRunner, Record, prepare, prepare_unlogged
from loopin.models import BatchItem, BatchJob, Endpoint, Prediction
from loopin.services import Services
from loopin.store import join_uri, normalize_output_location, parse_object_uri
from loopin.validation import check_name

log = logging.getLogger("loopin.batch")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
ACTIVE = ("Pending", "Running")
FINISHED = ("Completed", "Cancelled", "Failed")
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_BROKEN_LINES_SHOWN = 20
PREDICTIONS = "predictions.jsonl"
FAILURES = "failures.jsonl"
PAGE_SIZE = 64
EXECUTORS = ("local", "ray")
CHECKPOINT_COLUMNS = ("status", "reason", "prediction_id", "loop_name", "result", "finished_at")


@dataclass(frozen=True)
class Source:
    kind: str  # prefix | folder | manifest
    uri: str  # s3://bucket/prefix, file:///abs/folder, or the manifest's s3:// or file:/// URI
    items: list[tuple[str, str]]  # (image URI, key under the output)


@dataclass(frozen=True)
class Progress:
    total: int
    done: int
    failed: int
    routed: int

    @property
    def pending(self) -> int:
        return self.total - self.done - self.failed


# -- sources -------------------------------------------------------------------------


def allowed_roots(ctx: Services) -> list[Path]:
    roots = [ctx.settings.data_dir, *(Path(r) for r in ctx.settings.batch_local_roots)]
    return [Path(os.path.realpath(r)) for r in roots]


def _local_path(ctx: Services, location: str, what: str) -> Path:
    """A local path (``/abs`` or ``file:///abs``) resolved, refused unless inside an allowed root."""
    raw = unquote(location[len("file://") :]) if location.startswith("file://") else location
    if not os.path.isabs(raw):
        raise ValidationError(f"The {what} '{location}' is not an absolute path, file:/// URI or s3:// URI.")
    path = Path(os.path.realpath(raw))
    if not any(path == root or path.is_relative_to(root) for root in allowed_roots(ctx)):
        raise ValidationError(
            f"The {what} '{location}' is outside the folders batch jobs may read: the data directory "
            "and batch_local_roots (LOOPIN_BATCH_LOCAL_ROOTS).",
            details={"reason": "OutsideAllowedRoots"},
        )
    return path


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def resolve_source(ctx: Services, *, source: str | None, manifest: str | None) -> Source:
    """List the images of a source, or raise ValidationError saying why there are none."""
    if (source is None) == (manifest is None):
        raise ValidationError("Give exactly one of 'source' (an s3:// prefix or a local folder) and 'manifest'.")
    if manifest is not None:
        return _manifest_source(ctx, manifest)
    assert source is not None
    if source.startswith("s3://"):
        base = source.split("/", 3)[3] if source.count("/") >= 3 else ""
        items = []
        for info in ctx.store.list(source):
            key = info.uri.split("/", 3)[3]
            if _is_image(key):
                rel = key[len(base) :].lstrip("/")
                items.append((info.uri, rel or key.rsplit("/", 1)[-1]))
        kind, uri = "prefix", source
    else:
        folder = _local_path(ctx, source, "source folder")
        if not folder.is_dir():
            raise ValidationError(f"The source folder '{source}' does not exist or is not a folder.")
        items = []
        for dirpath, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if _is_image(name):
                    path = Path(dirpath, name)
                    items.append((path.as_uri(), path.relative_to(folder).as_posix()))
        kind, uri = "folder", folder.as_uri()
    if not items:
        raise ValidationError(
            f"The source '{source}' holds no images ({', '.join(IMAGE_SUFFIXES)}).", details={"reason": "NoImages"}
        )
    return Source(kind, uri, sorted(items, key=lambda item: item[1]))


def _manifest_source(ctx: Services, manifest: str) -> Source:
    if manifest.startswith("s3://"):
        info = ctx.store.head(manifest)
        if info.size > MAX_MANIFEST_BYTES:
            raise ValidationError(f"The manifest is larger than {MAX_MANIFEST_BYTES:,} bytes.")
        data = ctx.store.get(manifest)
        uri = manifest
    else:
        path = _local_path(ctx, manifest, "manifest")
        if not path.is_file():
            raise ValidationError(f"The manifest '{manifest}' does not exist or is not a file.")
        data = path.read_bytes()[: MAX_MANIFEST_BYTES + 1]
        if len(data) > MAX_MANIFEST_BYTES:
            raise ValidationError(f"The manifest is larger than {MAX_MANIFEST_BYTES:,} bytes.")
        uri = path.as_uri()
    items, broken = parse_manifest(ctx, data)
    if broken:
        shown = broken[:MAX_BROKEN_LINES_SHOWN]
        lines = "; ".join(f"line {n}: {why}" for n, why in shown)
        more = f" (and {len(broken) - len(shown)} more)" if len(broken) > len(shown) else ""
        raise ValidationError(
            f"The manifest has {len(broken)} broken line(s): {lines}{more}. Nothing was started.",
            details={"reason": "BrokenManifest", "lines": [{"line": n, "reason": why} for n, why in shown]},
        )
    if not items:
        raise ValidationError("The manifest lists no images.", details={"reason": "NoImages"})
    return Source("manifest", uri, items)


def parse_manifest(ctx: Services, data: bytes) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
    """The (URI, key) of each line (a URI, or Ground Truth's ``{"source-ref": ...}``) and the
    broken lines (number, why)."""
    items: list[tuple[str, str]] = []
    broken: list[tuple[int, str]] = []
    seen: set[str] = set()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [], [(0, "the manifest is not UTF-8 text")]
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        ref: Any = line
        if line.startswith("{"):
            try:
                ref = json.loads(line).get("source-ref")
            except (ValueError, AttributeError):
                broken.append((number, "not valid JSON"))
                continue
            if not isinstance(ref, str):
                broken.append((number, "no 'source-ref' string"))
                continue
        try:
            if ref.startswith("s3://"):
                _, key = parse_object_uri(ref)
                item = (ref, key)
            else:
                path = _local_path(ctx, ref, "image")
                item = (path.as_uri(), path.as_posix().lstrip("/"))
        except LoopinError as exc:
            broken.append((number, exc.message))
            continue
        if item[0] not in seen:
            seen.add(item[0])
            items.append(item)
    return items, broken


def read_image(ctx: Services, uri: str) -> bytes:
    """An image's bytes from the store or an allowed local folder (checked again: a link may
    have changed since the job was created)."""
    if uri.startswith("s3://"):
        info = ctx.store.head(uri)
        if info.size > MAX_BODY_BYTES:
            raise ValidationError(f"The image is larger than {MAX_BODY_BYTES:,} bytes.")
        return ctx.store.get(uri)
    path = _local_path(ctx, uri, "image")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BODY_BYTES + 1)
    except FileNotFoundError as exc:
        raise NotFoundError(f"The image '{uri}' no longer exists.") from exc
    except OSError as exc:
        raise ValidationError(f"The image '{uri}' cannot be read: {exc.strerror}.") from exc
    if len(data) > MAX_BODY_BYTES:
        raise ValidationError(f"The image is larger than {MAX_BODY_BYTES:,} bytes.")
    return data


# -- the job's lifecycle ---------------------------------------------------------------


def create_job(
    ctx: Services,
    *,
    endpoint_name: str,
    output: str,
    source: str | None = None,
    manifest: str | None = None,
    name: str | None = None,
    executor: str = "local",
    address: str | None = None,
) -> BatchJob:
    """Check everything that can be checked before work starts (the endpoint is InService,
    the source lists images, the output is a valid location, a Ray cluster answers), then
    store the job and one checkpoint row per image. The same name with the same arguments
    answers the existing job."""
    name = check_name(name, what="Batch job name") if name is not None else f"batch-{uuid.uuid4().hex[:16]}"
    output_uri = normalize_output_location(output)
    if executor not in EXECUTORS:
        raise ValidationError(f"The executor '{executor}' is not one of {', '.join(EXECUTORS)}.")
    if executor == "local" and address is not None:
        raise ValidationError("An address is for the Ray executor only (executor 'ray').")
    with ctx.db.read() as session:
        existing = session.scalar(select(BatchJob).where(BatchJob.name == name))
        if existing is not None:
            return _same_or_conflict(existing, endpoint_name, output_uri, executor)
        endpoint = get_endpoint(session, endpoint_name)
        if endpoint.status not in ("InService", "Updating"):
            raise ValidationError(
                f"Endpoint '{endpoint_name}' is {endpoint.status}, not InService: nothing was started.",
                details={"reason": "EndpointNotInService", "status": endpoint.status},
            )
    found = resolve_source(ctx, source=source, manifest=manifest)
    if executor == "ray":
        address = batch_ray.check_address(address or "auto")

    def store(session: Session) -> BatchJob:
        existing = session.scalar(select(BatchJob).where(BatchJob.name == name))
        if existing is not None:
            return _same_or_conflict(existing, endpoint_name, output_uri, executor)
        job = BatchJob(
            name=name,
            endpoint_name=endpoint_name,
            source_kind=found.kind,
            source_uri=found.uri,
            output_uri=output_uri,
            executor=executor,
            executor_address=address,
            status="Pending",
            total=len(found.items),
            created_at=ctx.clock.now_ms(),
        )
        session.add(job)
        session.flush()
        session.execute(
            insert(BatchItem),
            [
                {"job_id": job.id, "seq": seq, "uri": uri, "key": key, "status": "pending"}
                for seq, (uri, key) in enumerate(found.items)
            ],
        )
        return job

    return ctx.write(store)


def _same_or_conflict(job: BatchJob, endpoint_name: str, output_uri: str, executor: str) -> BatchJob:
    if job.endpoint_name != endpoint_name or job.output_uri != output_uri or job.executor != executor:
        raise ConflictError(f"A batch job named '{job.name}' already exists with other settings.")
    return job


def get_job(session: Session, name: str) -> BatchJob:
    job = session.scalar(select(BatchJob).where(BatchJob.name == name))
    if job is None:
        raise NotFoundError(f"Batch job '{name}' does not exist.")
    return job


def list_jobs(session: Session, *, status: str | None = None, limit: int = 100) -> list[BatchJob]:
    query = select(BatchJob).order_by(BatchJob.id.desc()).limit(limit)
    if status is not None:
        query = query.where(BatchJob.status == status)
    return list(session.scalars(query))


def progress(session: Session, job: BatchJob) -> Progress:
    counts = dict(
        session.execute(
            select(BatchItem.status, func.count()).where(BatchItem.job_id == job.id).group_by(BatchItem.status)
        ).all()
    )
    routed = session.scalar(select(func.count()).where(BatchItem.job_id == job.id, BatchItem.loop_name.is_not(None)))
    return Progress(job.total, int(counts.get("done", 0)), int(counts.get("failed", 0)), int(routed or 0))


def failures(session: Session, job: BatchJob, *, limit: int = 1000) -> list[BatchItem]:
    query = (
        select(BatchItem)
        .where(BatchItem.job_id == job.id, BatchItem.status == "failed")
        .order_by(BatchItem.seq)
        .limit(limit)
    )
    return list(session.scalars(query))


def cancel_job(session: Session, name: str, *, now_ms: int) -> BatchJob:
    """Stop a job: a Pending one at once, a Running one after the images in flight (the
    runner sees it between chunks). Finished images and their loops are kept."""
    job = get_job(session, name)
    if job.status in FINISHED:
        raise ConflictError(f"Batch job '{name}' is already {job.status}.")
    job.status = "Cancelled"
    job.finished_at = now_ms
    return job


# -- running -----------------------------------------------------------------------------


def worker_count(ctx: Services) -> int:
    return ctx.settings.batch_workers or os.cpu_count() or 1


def claim_job(ctx: Services, owner: str, *, name: str | None = None) -> str | None:
    """Take the lease of one job that is waiting or whose runner's lease ran out; its name."""
    now = ctx.clock.now_ms()
    with ctx.db.read() as session:
        query = select(BatchJob.id).where(
            BatchJob.status.in_(ACTIVE),
            (BatchJob.lease_expires_at.is_(None)) | (BatchJob.lease_expires_at < now) | (BatchJob.lease_owner == owner),
        )
        if name is not None:
            query = query.where(BatchJob.name == name)
        candidates = list(session.scalars(query.order_by(BatchJob.id).limit(5)))
    for job_id in candidates:
        with ctx.db.write() as session:
            taken = session.execute(
                update(BatchJob)
                .where(
                    BatchJob.id == job_id,
                    BatchJob.status.in_(ACTIVE),
                    (BatchJob.lease_expires_at.is_(None))
                    | (BatchJob.lease_expires_at < now)
                    | (BatchJob.lease_owner == owner),
                )
                .values(
                    lease_owner=owner,
                    lease_expires_at=now + ctx.settings.batch_lease_seconds * 1000,
                    status="Running",
                    started_at=func.coalesce(BatchJob.started_at, now),
                )
            ).rowcount  # type: ignore[attr-defined]
            if taken == 1:
                return session.get_one(BatchJob, job_id).name
    return None


def _checkpoint_and_renew(ctx: Services, job_id: int, owner: str, rows: list[Checkpoint]) -> str | None:
    """Write finished images' checkpoints and extend the lease, in one transaction; the
    job's status, or None when the lease is no longer ours."""
    now = ctx.clock.now_ms()
    items = cast(Table, BatchItem.__table__)
    with ctx.db.write() as session:
        if rows:  # one statement for all: only an image still pending takes its checkpoint
            session.connection().execute(
                update(items)
                .where(items.c.id == bindparam("item_id"), items.c.status == "pending")
                .values({column: bindparam(f"new_{column}") for column in CHECKPOINT_COLUMNS}),
                [
                    {"item_id": item_id, **{f"new_{column}": values.get(column) for column in CHECKPOINT_COLUMNS}}
                    for item_id, values in rows
                ],
            )
        renewed = session.execute(
            update(BatchJob)
            .where(BatchJob.id == job_id, BatchJob.lease_owner == owner, BatchJob.status == "Running")
            .values(lease_expires_at=now + ctx.settings.batch_lease_seconds * 1000)
        ).rowcount  # type: ignore[attr-defined]
        status = session.scalar(select(BatchJob.status).where(BatchJob.id == job_id))
    return status if renewed == 1 or status != "Running" else None


def _release(ctx: Services, job_id: int, owner: str) -> None:
    with ctx.db.write() as session:
        session.execute(
            update(BatchJob)
            .where(BatchJob.id == job_id, BatchJob.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


def run_job(
    ctx: Services,
    name: str,
    *,
    owner: str,
    workers: int | None = None,
    max_images: int | None = None,
    stop: threading.Event | None = None,
) -> str:
    """Work on a job whose lease ``owner`` holds until it is finished, cancelled, its lease
    is lost, ``stop`` is set (the server shuts down: the lease is released) or ``max_images``
    were done (tests: a runner killed midway, its lease left to run out). The job's status.

    Images flow through a window of threads (twice the workers, so one image's store
    writes overlap the next one's inference; the endpoint's instance count bounds the
    inferences). The predictions and loops of the images whose model ran are written a
    few at a time, in one transaction; then each image's ``.out``; the checkpoints are
    written a few at a time with the lease renewed."""
    with ctx.db.read() as session:
        job = get_job(session, name)
        job_id, endpoint_name, output_uri = job.id, job.endpoint_name, job.output_uri
        executor, address = job.executor, job.executor_address
    run_model: ModelRunner = detect
    if executor == "ray":
        try:
            batch_ray.connect(address or "auto")
            workers = workers or batch_ray.cluster_cpus()
            run_model = batch_ray.RayModelRunner(ctx)
        except batch_ray.ClusterUnavailable as exc:
            return _finish(ctx, job_id, owner, output_uri, "Failed", reason=f"{exc} The finished images are kept.")
    threads = 2 * max(1, workers or worker_count(ctx))
    queue: deque[_Pending] = deque()
    in_flight: set[Future[Step | list[Checkpoint]]] = set()
    unrecorded: list[_Unrecorded] = []
    done_rows: list[Checkpoint] = []
    after_seq, submitted, exhausted = -1, 0, False
    verdict: tuple[str, str | None] | None = None  # why the job stops: (status, reason)
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal verdict, last_flush
        last_flush = time.monotonic()
        status = _checkpoint_and_renew(ctx, job_id, owner, done_rows)
        done_rows.clear()
        if status is None:
            verdict = verdict or ("Lost", None)
        elif status != "Running":
            verdict = verdict or (status, None)

    def record() -> None:
        """Hand the waiting images to a thread that records them in one transaction."""
        in_flight.add(pool.submit(_record, ctx, output_uri, list(unrecorded)))
        unrecorded.clear()

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="loopin-batch") as pool:
        try:
            flush()
            while True:
                if stop is not None and stop.is_set():
                    verdict = verdict or ("Stopped", None)
                while verdict is None and len(in_flight) + len(unrecorded) < 2 * threads:
                    if max_images is not None and submitted >= max_images:
                        break
                    if not queue and not exhausted:
                        rows, why = _next_page(ctx, job_id, name, endpoint_name, after_seq)
                        if why is not None:
                            verdict = ("Failed", why + " The finished images are kept.")
                            break
                        queue.extend(rows)
                        exhausted = not rows
                    if not queue:
                        break
                    image = queue.popleft()
                    after_seq = image.seq
                    submitted += 1
                    in_flight.add(pool.submit(_infer, ctx, name, output_uri, image, run_model))
                if unrecorded and (len(unrecorded) >= threads or len(in_flight) < threads):
                    record()
                if not in_flight:
                    break
                finished, in_flight = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        row = future.result()
                    except batch_ray.ClusterUnavailable as exc:
                        verdict = verdict or ("Failed", f"{exc} The finished images are kept.")
                        continue
                    if isinstance(row, _Unrecorded):
                        unrecorded.append(row)
                    elif isinstance(row, list):
                        done_rows.extend(row)
                    elif row is not None:
                        done_rows.append(row)
                if len(done_rows) >= 2 * threads or time.monotonic() - last_flush >= 1.0:
                    flush()
        finally:
            for future in in_flight:  # an image's error (the store down) ends the run: keep what finished
                if not future.cancel() and future.exception() is None:
                    row = future.result()
                    done_rows.extend(row if isinstance(row, list) else [row] if isinstance(row, tuple) else [])
            if done_rows:  # images whose model ran but were not recorded stay pending
                _checkpoint_and_renew(ctx, job_id, owner, done_rows)
                done_rows.clear()
    if verdict is None:
        if max_images is not None and submitted >= max_images:
            return "Running"  # left as a killed runner leaves it: the lease runs out
        left, why = _next_page(ctx, job_id, name, endpoint_name, -1)
        if why is not None:  # the endpoint went away while the last images ran
            return _finish(ctx, job_id, owner, output_uri, "Failed", reason=why + " The finished images are kept.")
        if left:  # images skipped while the endpoint was being replaced: the next round runs them
            _release(ctx, job_id, owner)
            return "Running"
        return _finish(ctx, job_id, owner, output_uri, "Completed")
    status, reason = verdict
    if status == "Lost":
        return "Running"  # another process has it now
    if status == "Stopped":
        _release(ctx, job_id, owner)
        return "Running"
    if status == "Failed":
        return _finish(ctx, job_id, owner, output_uri, "Failed", reason=reason)
    _write_predictions(ctx, job_id, output_uri)  # cancelled meanwhile
    _release(ctx, job_id, owner)
    return status


@dataclass(frozen=True)
class _Pending:
    """An image to run, with the endpoint row read for its page and whether its answer was
    logged before (a run resumed after the answer's write, before its checkpoint)."""

    item_id: int
    seq: int
    uri: str
    key: str
    endpoint: Endpoint
    logged: bool


def idempotency_key(job_name: str, seq: int) -> str:
    return f"batch:{job_name}:{seq}"


def _next_page(
    ctx: Services, job_id: int, job_name: str, endpoint_name: str, after_seq: int
) -> tuple[list[_Pending], str | None]:
    """The next pending images, or why the endpoint cannot run them."""
    with ctx.db.read() as session:
        try:
            endpoint = get_endpoint(session, endpoint_name)
        except NotFoundError as exc:
            return [], exc.message
        if endpoint.status not in ("InService", "Updating"):
            return [], f"Endpoint '{endpoint_name}' is {endpoint.status}, not InService."
        rows = session.execute(
            select(BatchItem.id, BatchItem.seq, BatchItem.uri, BatchItem.key)
            .where(BatchItem.job_id == job_id, BatchItem.status == "pending", BatchItem.seq > after_seq)
            .order_by(BatchItem.seq)
            .limit(PAGE_SIZE)
        ).all()
        keys = [idempotency_key(job_name, row.seq) for row in rows]
        logged = set(
            session.scalars(
                select(Prediction.idempotency_key).where(
                    Prediction.endpoint_name == endpoint_name, Prediction.idempotency_key.in_(keys)
                )
            )
        )
    return [_Pending(r[0], r[1], r[2], r[3], endpoint, key in logged) for r, key in zip(rows, keys, strict=True)], None


@dataclass(frozen=True)
class _Unrecorded:
    """An image whose model ran, its prediction and loop still to write."""

    item_id: int
    uri: str
    key: str
    record: Record


Checkpoint = tuple[int, dict[str, Any]]  # (item id, the values of its row)
Step = Checkpoint | _Unrecorded | None  # what ``_infer`` gives: see there


def _infer(ctx: Services, job_name: str, output_uri: str, image: _Pending, run_model: ModelRunner) -> Step:
    """Run one image's model: the write still to make, the checkpoint of a bad image or of
    one answered before (a run resumed after its answer was written), or None when it stays
    pending."""
    key = idempotency_key(job_name, image.seq)
    try:
        data = read_image(ctx, image.uri)
        prepared: Invocation | Record
        if image.logged:
            prepared = prepare(ctx, image.endpoint.name, data, idempotency_key=key, run_model=run_model)
        else:
            prepared = prepare_unlogged(ctx, image.endpoint, data, idempotency_key=key, run_model=run_model)
    except StoreUnavailableError:
        raise  # the store is down, not the image: the job is retried, the image stays pending
    except LoopinError as exc:
        return _failed(ctx, image.item_id, exc)
    if isinstance(prepared, Invocation):
        return _answered(ctx, output_uri, image.item_id, image.uri, image.key, prepared)
    return _Unrecorded(image.item_id, image.uri, image.key, prepared)


def _record(ctx: Services, output_uri: str, images: list[_Unrecorded]) -> list[Checkpoint]:
    """The images' predictions and loops in one transaction, then their ``.out``; their
    checkpoints (an image whose write failed on its own is failed, the others are kept)."""
    rows = []
    for image, outcome in zip(images, ctx.write_grouped_each([image.record for image in images]), strict=True):
        if isinstance(outcome, LoopinError):
            row = _failed(ctx, image.item_id, outcome)
        else:
            row = _answered(ctx, output_uri, image.item_id, image.uri, image.key, outcome)
        if row is not None:
            rows.append(row)
    return rows


def _failed(ctx: Services, item_id: int, exc: LoopinError) -> Checkpoint | None:
    if isinstance(exc, NotFoundError) or exc.details.get("reason") == "EndpointNotInService":
        return None  # the endpoint was deleted or is being replaced: the image stays pending, the job stops
    return item_id, {"status": "failed", "reason": f"{exc.code}: {exc.message}", "finished_at": ctx.clock.now_ms()}


def _answered(ctx: Services, output_uri: str, item_id: int, uri: str, key: str, answer: Invocation) -> Checkpoint:
    """Write the image's ``.out``; its checkpoint (written after, so a crash in between
    runs the image again, which replays the logged answer)."""
    body = answer.body
    ctx.store.put(join_uri(output_uri, f"{key}.out"), json.dumps(body).encode(), content_type="application/json")
    loop = body.get("human_loop") or {}
    return item_id, {
        "status": "done",
        "prediction_id": body.get("prediction_id"),
        "loop_name": loop.get("name"),
        "result": json.dumps({"source": uri, "key": key, **body}, sort_keys=True),
        "finished_at": ctx.clock.now_ms(),
    }


def _finish(ctx: Services, job_id: int, owner: str, output_uri: str, status: str, *, reason: str | None = None) -> str:
    _write_predictions(ctx, job_id, output_uri)
    with ctx.db.write() as session:
        session.execute(
            update(BatchJob)
            .where(BatchJob.id == job_id, BatchJob.lease_owner == owner, BatchJob.status == "Running")
            .values(status=status, failure_reason=reason, finished_at=ctx.clock.now_ms())
        )
    _release(ctx, job_id, owner)
    return status


def _lines(ctx: Services, job_id: int, status: str) -> Iterator[str]:
    with ctx.db.read() as session:
        rows = session.execute(
            select(BatchItem.result, BatchItem.uri, BatchItem.key, BatchItem.reason)
            .where(BatchItem.job_id == job_id, BatchItem.status == status)
            .order_by(BatchItem.seq)
        ).all()
    for result, uri, key, reason in rows:
        yield (result or "") if status == "done" else json.dumps({"source": uri, "key": key, "reason": reason})


def _write_predictions(ctx: Services, job_id: int, output_uri: str) -> None:
    """``predictions.jsonl`` (and ``failures.jsonl`` when an image was bad), rebuilt from
    the checkpoints: the same file whichever process or run wrote it."""
    for status, name in (("done", PREDICTIONS), ("failed", FAILURES)):
        lines = list(_lines(ctx, job_id, status))
        if lines or status == "done":
            body = ("\n".join(lines) + "\n" if lines else "").encode()
            ctx.store.put(join_uri(output_uri, name), body, content_type="application/jsonl")


def new_owner() -> str:
    return f"{os.uname().nodename[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def run_next(
    ctx: Services,
    *,
    owner: str,
    name: str | None = None,
    workers: int | None = None,
    stop: threading.Event | None = None,
) -> str | None:
    """Claim one job (waiting, or abandoned by a runner whose lease ran out) and run it;
    its name, or None when there was none. A failure that is not an image's (the store down)
    releases the lease so the next round retries."""
    claimed = claim_job(ctx, owner, name=name)
    if claimed is None:
        return None
    try:
        run_job(ctx, claimed, owner=owner, workers=workers, stop=stop)
    except Exception:
        with ctx.db.read() as session:
            job_id = get_job(session, claimed).id
        _release(ctx, job_id, owner)
        raise
    return claimed
