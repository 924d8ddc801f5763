"""Export jobs: create (the selection and the target are checked at once, so a bad request
is a 4xx and no job), claim with a lease (any server process may run a job; one that dies
leaves its lease to expire and another process starts the job over), run (keyset pages,
incremental writers, progress and lease renewal per page), and put the result in place
only when it is whole: a zip or folder is renamed from its temporary name, an S3 prefix
gets its ``loopin-export.json`` last (and what was uploaded is removed on failure).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from loopin.errors import AccessDeniedError, LoopinError, NotFoundError, StoreUnavailableError, ValidationError
from loopin.exports.formats import WRITERS, Writer
from loopin.exports.selection import ExportSpec, Item, Reader, check_selection, image_size, loop_pages
from loopin.exports.sinks import META_FILE, FolderSink, Sink, ZipSink
from loopin.models import ExportJob
from loopin.store import ObjectStore, join_uri, normalize_output_location, parse_object_uri

if TYPE_CHECKING:
    from loopin.services import Services

log = logging.getLogger("loopin.exports")

LEASE_MS = 120_000  # renewed after every page; a process silent this long has died
MAX_ATTEMPTS = 3
STATES = ("queued", "running", "succeeded", "failed")
_IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


class LeaseLost(Exception):
    """Another process took the job over (this one was too slow to renew its lease)."""


def exports_dir(data_dir: Path) -> Path:
    return (data_dir / "exports").resolve()


def folder_target(data_dir: Path, location: str) -> Path:
    """The folder an export is written to: relative to ``<data_dir>/exports``, or absolute,
    but inside the data directory and not there yet."""
    root = data_dir.resolve()
    path = Path(location)
    target = (path if path.is_absolute() else exports_dir(data_dir) / path).resolve()
    if not target.is_relative_to(root) or target == root or target == exports_dir(data_dir):
        raise ValidationError(
            f"The folder {location!r} is not inside the data directory ({root}); exports are written only there.",
            details={"reason": "TargetOutsideDataDir"},
        )
    if target.exists():
        raise ValidationError(f"The folder {target} exists already.", details={"reason": "TargetExists"})
    return target


def check_target(ctx: Services, spec: ExportSpec) -> None:
    """Refuse a target the export could not write to, before any job exists."""
    if spec.target == "folder":
        assert spec.location is not None
        folder_target(ctx.settings.data_dir, spec.location)
    elif spec.target == "s3":
        assert spec.location is not None
        prefix = normalize_output_location(spec.location)
        probe = join_uri(prefix, f".loopin-probe-{secrets.token_hex(6)}")
        try:
            ctx.store.put(probe, b"", content_type="text/plain")
            ctx.store.delete(probe)
        except (AccessDeniedError, NotFoundError, StoreUnavailableError, ValidationError) as exc:
            raise ValidationError(
                f"Cannot write to {prefix}: {exc.message}", details={"reason": "TargetNotWritable"}
            ) from exc


def request_export(ctx: Services, spec: ExportSpec) -> ExportJob:
    """Check the selection and the target, then queue the job."""
    with ctx.db.read() as session:
        check_selection(session, spec)
    check_target(ctx, spec)
    return ctx.write(lambda s: create_export(s, spec, now_ms=ctx.clock.now_ms()))


def create_export(session: Session, spec: ExportSpec, *, now_ms: int) -> ExportJob:
    total = check_selection(session, spec)
    job = ExportJob(
        export_id="exp-" + secrets.token_hex(8),
        flow_name=spec.flow,
        format=spec.format,
        settings=spec.to_json(),
        state="queued",
        attempts=0,
        total=total,
        done=0,
        items=0,
        annotations=0,
        skipped=0,
        created_at=now_ms,
    )
    session.add(job)
    session.flush()
    return job


def get_export(session: Session, export_id: str) -> ExportJob:
    job = session.scalar(select(ExportJob).where(ExportJob.export_id == export_id))
    if job is None:
        raise NotFoundError(f"No export '{export_id}'.")
    return job


def list_exports(session: Session, *, flow: str | None = None, limit: int = 50) -> Sequence[ExportJob]:
    query = select(ExportJob).order_by(ExportJob.id.desc()).limit(max(1, min(limit, 500)))
    if flow is not None:
        query = query.where(ExportJob.flow_name == flow)
    return session.scalars(query).all()


def _due(now_ms: int) -> Any:
    return or_(
        ExportJob.state == "queued",
        (ExportJob.state == "running") & (ExportJob.lease_expires_at < now_ms),
    )


def export_due(session: Session, *, now_ms: int) -> bool:
    """Whether a job waits (a read, so that idle processes take no write lock every round)."""
    return session.scalar(select(ExportJob.id).where(_due(now_ms)).limit(1)) is not None


def claim_export(session: Session, *, now_ms: int, owner: str) -> ExportJob | None:
    """Take the oldest queued job, or a running one whose lease has expired."""
    job = session.scalar(
        select(ExportJob).where(_due(now_ms)).order_by(ExportJob.id).limit(1).with_for_update(skip_locked=True)
    )
    if job is None:
        return None
    if job.attempts >= MAX_ATTEMPTS:
        job.state = "failed"
        job.error_code = "InternalServerException"
        job.error_message = f"The export was abandoned {job.attempts} times (a server process stopped running it)."
        job.finished_at = now_ms
        return None
    job.state = "running"
    job.owner = owner
    job.lease_expires_at = now_ms + LEASE_MS
    job.attempts += 1
    job.started_at = now_ms
    job.done = job.items = job.annotations = job.skipped = 0
    return job


@dataclass
class _Progress:
    done: int = 0
    items: int = 0
    annotations: int = 0
    skipped: int = 0


def _report(ctx: Services, job_id: int, owner: str, p: _Progress) -> None:
    with ctx.db.write() as session:
        result = session.execute(
            update(ExportJob)
            .where(ExportJob.id == job_id, ExportJob.owner == owner, ExportJob.state == "running")
            .values(
                done=p.done,
                items=p.items,
                annotations=p.annotations,
                skipped=p.skipped,
                lease_expires_at=ctx.clock.now_ms() + LEASE_MS,
            )
        )
    if not getattr(result, "rowcount", 1):
        raise LeaseLost()


def run_pending_exports(ctx: Services, *, limit: int = 1) -> int:
    """Claim and run up to ``limit`` jobs in this thread; how many finished."""
    finished = 0
    for _ in range(limit):
        owner = secrets.token_hex(8)
        with ctx.db.read() as session:
            if not export_due(session, now_ms=ctx.clock.now_ms()):
                break
        with ctx.db.write() as session:
            job = claim_export(session, now_ms=ctx.clock.now_ms(), owner=owner)
            claimed = (job.id, job.export_id) if job is not None else None
        if claimed is None:
            break
        run_export(ctx, claimed[0], owner)
        finished += 1
    return finished


def run_export(ctx: Services, job_id: int, owner: str) -> None:
    with ctx.db.read() as session:
        job = session.get_one(ExportJob, job_id)
        export_id, spec, created = job.export_id, ExportSpec.from_json(job.settings), job.created_at
    work = exports_dir(ctx.settings.data_dir)
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob(f".tmp-{export_id}-*"):  # what an attempt that died left behind
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    tmp = work / f".tmp-{export_id}-{owner}"
    scratch = work / f".tmp-{export_id}-{owner}-scratch"
    scratch.mkdir()
    sink: Sink = ZipSink(tmp.with_suffix(".zip")) if spec.target == "zip" else FolderSink(tmp)
    try:
        progress, loops_sha256 = _write(ctx, job_id, owner, spec, sink, scratch, created_ms=created)
        location, size = _place(ctx, spec, export_id, sink)
    except LeaseLost:
        log.warning("export %s: another process took it over", export_id)
        sink.discard()
        return
    except Exception as exc:
        sink.discard()
        _fail(ctx, job_id, owner, exc)
        return
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with ctx.db.write() as session:
        session.execute(
            update(ExportJob)
            .where(ExportJob.id == job_id, ExportJob.owner == owner)
            .values(
                state="succeeded",
                done=progress.done,
                items=progress.items,
                annotations=progress.annotations,
                skipped=progress.skipped,
                location=location,
                size_bytes=size,
                content_sha256=sink.content_sha256(),
                loops_sha256=loops_sha256,
                lease_expires_at=None,
                finished_at=ctx.clock.now_ms(),
            )
        )


def _fail(ctx: Services, job_id: int, owner: str, exc: Exception) -> None:
    if isinstance(exc, LoopinError):
        code, message = exc.code, exc.message
        reason = exc.details.get("reason") if exc.details else None
        if isinstance(reason, str):
            code = reason  # the finer stable code (EmptySelection, TargetNotWritable, ...)
    else:
        log.exception("export failed")
        code, message = "InternalServerException", f"The export failed: {type(exc).__name__}; see the server log."
    with ctx.db.write() as session:
        session.execute(
            update(ExportJob)
            .where(ExportJob.id == job_id, ExportJob.owner == owner)
            .values(
                state="failed",
                error_code=code[:64],
                error_message=message[:1024],
                lease_expires_at=None,
                finished_at=ctx.clock.now_ms(),
            )
        )


def _write(
    ctx: Services, job_id: int, owner: str, spec: ExportSpec, sink: Sink, scratch: Path, *, created_ms: int
) -> tuple[_Progress, str]:
    writer = WRITERS[spec.format](sink, spec, scratch, created_ms=created_ms)
    try:
        return _write_with(ctx, job_id, owner, spec, sink, writer, scratch)
    finally:
        writer.close()


def _write_with(
    ctx: Services, job_id: int, owner: str, spec: ExportSpec, sink: Sink, writer: Writer, scratch: Path
) -> tuple[_Progress, str]:
    progress = _Progress()
    loops_hash = hashlib.sha256()
    reader = Reader(spec, ctx.store)
    last_report = time.monotonic()
    with open(scratch / "loops.txt", "w+b") as loops_file, ctx.db.read() as session:
        for page in loop_pages(session, spec):
            for item in reader.items(session, page):
                if not writer.accepts(item):
                    progress.skipped += 1
                    continue
                ref = _image_ref(ctx.store, sink, spec, item)
                if ref is None or (item.boxes is not None and not (item.width and item.height)):
                    progress.skipped += 1
                    continue
                progress.annotations += writer.add(item, ref)
                progress.items += 1
                line = f"{item.key}\t{item.loop_name}\t{' '.join(item.workers)}\n".encode()
                loops_file.write(line)
                loops_hash.update(line)
            progress.done += len(page)
            if time.monotonic() - last_report > 0.5:
                _report(ctx, job_id, owner, _with_reader(progress, reader))
                last_report = time.monotonic()
        progress = _with_reader(progress, reader)
        if progress.items == 0:
            raise ValidationError(
                "No loop matched: the filters (labels, changed only) or the format "
                f"({spec.format}) left nothing to export.",
                details={"reason": "EmptySelection"},
            )
        writer.finish()
        loops_file.flush()
        loops_file.seek(0)
        with sink.open("loops.txt") as out:
            shutil.copyfileobj(loops_file, out)
    meta = {
        "flow": spec.flow,
        "format": spec.format,
        "settings": json.loads(spec.to_json()),
        "loops_selected": progress.done,
        "items": progress.items,
        "annotations": progress.annotations,
        "skipped": progress.skipped,
        "classes": writer.classes.names,
        "content_sha256": sink.content_sha256(),
        "loops_sha256": loops_hash.hexdigest(),
    }
    sink.write(META_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
    _report(ctx, job_id, owner, progress)
    return progress, loops_hash.hexdigest()


def _with_reader(progress: _Progress, reader: Reader) -> _Progress:
    return _Progress(progress.done, progress.items, progress.annotations, progress.skipped + reader.skipped)


def _image_ref(store: ObjectStore, sink: Sink, spec: ExportSpec, item: Item) -> str | None:
    """Where the export's files find the image: its URI, or the copy beside the labels.
    Reads the image when it is copied or its size is unknown (None: it cannot be read)."""
    if spec.images == "reference" and item.width and item.height:
        return item.image_uri
    try:
        data = store.get(item.image_uri)
    except (LoopinError, ValueError) as exc:
        log.warning("export: image %s of loop %s not read: %s", item.image_uri, item.loop_name, exc)
        return None if (spec.images == "copy" or item.boxes is not None) else item.image_uri
    if not (item.width and item.height):
        size = image_size(data)
        if size is None:
            return None
        item.width, item.height = size
    if spec.images == "reference":
        return item.image_uri
    suffix = Path(item.image_uri.rsplit("/", 1)[-1]).suffix.lower()
    suffix = suffix if suffix in _IMAGE_TYPES else ".jpg"
    path = f"images/{item.key}{suffix}"
    sink.write(path, data, compress=False)
    return path


def _place(ctx: Services, spec: ExportSpec, export_id: str, sink: Sink) -> tuple[str, int]:
    """Put the finished export where it belongs; its location and size."""
    written = sink.close()
    if spec.target == "zip":
        final = exports_dir(ctx.settings.data_dir) / f"{export_id}.zip"
        os.replace(written, final)
        return str(final), final.stat().st_size
    assert spec.location is not None
    if spec.target == "folder":
        final = folder_target(ctx.settings.data_dir, spec.location)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(written, final)
        return str(final), sink.size
    prefix = normalize_output_location(spec.location)
    uploaded: list[str] = []
    try:
        files = (p.relative_to(written).as_posix() for p in written.rglob("*") if p.is_file())
        for path in itertools.chain((p for p in files if p != META_FILE), [META_FILE]):  # the record last
            uri = join_uri(prefix, path)
            parse_object_uri(uri)
            ctype = _IMAGE_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")
            if path.endswith(".json"):
                ctype = "application/json"
            ctx.store.put_file(uri, written / path, content_type=ctype)
            uploaded.append(uri)
    except LoopinError:
        for uri in uploaded:
            with contextlib.suppress(LoopinError):
                ctx.store.delete(uri)
        raise
    finally:
        shutil.rmtree(written, ignore_errors=True)
    return prefix, sink.size


def download_path(ctx: Services, job: ExportJob) -> Path:
    """The zip of a finished zip export."""
    if job.state != "succeeded":
        raise ValidationError(f"Export '{job.export_id}' is {job.state}; only a finished export can be downloaded.")
    if json.loads(job.settings).get("target") != "zip" or not job.location:
        raise ValidationError(
            f"Export '{job.export_id}' was written to {job.location}; only zip exports are downloaded.",
            details={"reason": "NotAZip"},
        )
    path = Path(job.location)
    if not path.is_file():
        raise NotFoundError(f"The file of export '{job.export_id}' is gone from {path}.")
    return path
