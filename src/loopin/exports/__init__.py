"""Exports of a flow's finished loops to training formats (COCO, YOLO, Pascal VOC, the
SageMaker Ground Truth manifest, CSV), run as background jobs: ``selection`` (which loops,
which answer of each), ``formats`` (the incremental writers), ``sinks`` (zip or folder
under a temporary name), ``jobs`` (create, claim, run, place, download)."""

from loopin.exports.jobs import (
    check_target,
    claim_export,
    create_export,
    download_path,
    get_export,
    list_exports,
    request_export,
    run_export,
    run_pending_exports,
)
from loopin.exports.selection import FORMATS, ExportSpec

__all__ = [
    "FORMATS",
    "ExportSpec",
    "check_target",
    "claim_export",
    "create_export",
    "download_path",
    "get_export",
    "list_exports",
    "request_export",
    "run_export",
    "run_pending_exports",
]
