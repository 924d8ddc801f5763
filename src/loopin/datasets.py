"""Datasets: a named, immutable snapshot of a finished export, so that a training run can
name exactly what it trained on — which loops (``loops_sha256``, and the export's
``loops.txt``), which settings, and the hash of the files (``content_sha256``). A dataset
is never changed; downloading it checks the file is still the one recorded."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopin.errors import NotFoundError, ResourceInUseError, ValidationError
from loopin.exports import get_export
from loopin.exports.sinks import META_FILE
from loopin.models import Dataset
from loopin.validation import check_name


def create_dataset(session: Session, *, name: str, export_id: str, description: str = "", now_ms: int) -> Dataset:
    check_name(name, what="Dataset name")
    if len(description) > 256:
        raise ValidationError("The description is longer than 256 characters.")
    job = get_export(session, export_id)
    if job.state != "succeeded":
        raise ValidationError(f"Export '{export_id}' is {job.state}; a dataset is made from a finished export.")
    if session.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
        raise ResourceInUseError(f"A dataset named '{name}' exists already; datasets never change. Use a new name.")
    assert job.location and job.content_sha256 and job.loops_sha256 and job.size_bytes is not None
    dataset = Dataset(
        name=name,
        description=description,
        export_id=job.export_id,
        flow_name=job.flow_name,
        format=job.format,
        settings=job.settings,
        loops=job.items,
        items=job.items,
        annotations=job.annotations,
        location=job.location,
        size_bytes=job.size_bytes,
        content_sha256=job.content_sha256,
        loops_sha256=job.loops_sha256,
        created_at=now_ms,
    )
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, name: str) -> Dataset:
    row = session.scalar(select(Dataset).where(Dataset.name == name))
    if row is None:
        raise NotFoundError(f"No dataset named '{name}'.")
    return row


def list_datasets(session: Session, *, flow: str | None = None) -> Sequence[Dataset]:
    query = select(Dataset).order_by(Dataset.created_at.desc(), Dataset.id.desc())
    if flow is not None:
        query = query.where(Dataset.flow_name == flow)
    return session.scalars(query).all()


def verified_path(row: Dataset) -> Path:
    """The dataset's zip, once its recorded hash is found in it (a replaced file is refused)."""
    if json.loads(row.settings).get("target") != "zip":
        raise ValidationError(
            f"Dataset '{row.name}' was written to {row.location}; only zip datasets are downloaded.",
            details={"reason": "NotAZip"},
        )
    path = Path(row.location)
    if not path.is_file():
        raise NotFoundError(f"The file of dataset '{row.name}' is gone from {path}.")
    try:
        with zipfile.ZipFile(path) as archive:
            recorded = json.loads(archive.read(META_FILE)).get("content_sha256")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ValidationError(f"The file of dataset '{row.name}' is not the export it was made from.") from exc
    if recorded != row.content_sha256:
        raise ValidationError(f"The file of dataset '{row.name}' has changed since it was made.")
    return path
