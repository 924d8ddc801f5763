"""Native API routes for gold items, a flow's gold settings and its workers' quality,
added to the ``/api/v1`` app by ``api.create_api``."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.orm import Session

from loopin import gold, schemas, worker_quality
from loopin.clock import iso_ms
from loopin.flows import get_flow
from loopin.models import GoldItem
from loopin.validation import loads_stored
from loopin.web.api.auth import Admin, Ctx


def gold_item(s: Session, flow: str, item: GoldItem, counts: dict[int, tuple[int, float | None]]) -> schemas.GoldItem:
    answered, mean = counts.get(item.id, (0, None))
    return schemas.GoldItem(
        id=item.id,
        flow=flow,
        input=loads_stored(item.input_content),
        answer=loads_stored(item.answer),
        note=item.note,
        created_at=iso_ms(item.created_at),
        answered=answered,
        mean_score=None if mean is None else round(mean, 4),
    )


def settings_of(s: Session, flow: str) -> schemas.GoldSettings:
    found = gold.get_settings(s, get_flow(s, flow))
    return schemas.GoldSettings(
        gold_rate=found.rate, gold_min_accuracy=found.min_accuracy, gold_min_scored=found.min_scored
    )


def quality_row(r: worker_quality.WorkerQuality) -> schemas.WorkerQualityRow:
    def rounded(value: float | None, digits: int = 4) -> float | None:
        return None if value is None else round(value, digits)

    pause = r.pause
    return schemas.WorkerQualityRow(
        worker_id=r.worker.worker_id,
        email=r.worker.email,
        name=r.worker.name,
        gold_scored=r.gold_scored,
        gold_accuracy=rounded(r.gold_accuracy),
        consolidated_loops=r.consolidated_loops,
        agreement=rounded(r.agreement),
        tasks=r.tasks,
        seconds_per_task=rounded(r.seconds_per_task, 1),
        tasks_per_hour=rounded(r.tasks_per_hour, 1),
        paused=None
        if pause is None
        else schemas.WorkerPauseInfo(
            paused_at=iso_ms(pause.paused_at),
            reason=pause.reason,
            accuracy=round(pause.accuracy, 4),
            scored=pause.scored,
        ),
    )


def quality_report(s: Session, flow: str, *, now_ms: int) -> schemas.WorkerQuality:
    return schemas.WorkerQuality(
        flow=flow,
        settings=settings_of(s, flow),
        workers=[quality_row(r) for r in worker_quality.quality(s, flow)],
        accuracy_by_day=[
            schemas.DayAccuracy(
                day=iso_ms(d.day_ms)[:10], worker_id=d.worker_id, accuracy=round(d.accuracy, 4), scored=d.scored
            )
            for d in worker_quality.accuracy_by_day(s, flow, now_ms=now_ms)
        ],
    )


def quality_routes(api: FastAPI) -> None:
    @api.get("/flows/{name}/gold/settings", response_model=schemas.GoldSettings, tags=["gold and quality"])
    def get_settings(name: str, ctx: Ctx, _: Admin) -> schemas.GoldSettings:
        with ctx.db.read() as s:
            return settings_of(s, name)

    @api.put("/flows/{name}/gold/settings", response_model=schemas.GoldSettings, tags=["gold and quality"])
    def put_settings(name: str, body: schemas.GoldSettings, ctx: Ctx, _: Admin) -> schemas.GoldSettings:
        def run(s: Session) -> schemas.GoldSettings:
            gold.set_settings(
                s, name, rate=body.gold_rate, min_accuracy=body.gold_min_accuracy, min_scored=body.gold_min_scored
            )
            return settings_of(s, name)

        return ctx.write(run)

    @api.get("/flows/{name}/gold/items", response_model=list[schemas.GoldItem], tags=["gold and quality"])
    def list_items(name: str, ctx: Ctx, _: Admin) -> list[schemas.GoldItem]:
        with ctx.db.read() as s:
            counts = gold.served_counts(s, get_flow(s, name))
            return [gold_item(s, name, item, counts) for item in gold.list_items(s, name)]

    @api.post("/flows/{name}/gold/items", status_code=201, response_model=schemas.GoldItem, tags=["gold and quality"])
    def add_item(name: str, body: schemas.GoldItemCreate, ctx: Ctx, _: Admin) -> schemas.GoldItem:
        def run(s: Session) -> schemas.GoldItem:
            item = gold.add_item(
                s, name, input_content=body.input, answer=body.answer, note=body.note, now_ms=ctx.clock.now_ms()
            )
            return gold_item(s, name, item, {})

        return ctx.write(run)

    @api.post(
        "/flows/{name}/gold/items/batch",
        status_code=201,
        response_model=list[schemas.GoldItem],
        tags=["gold and quality"],
    )
    def add_items(name: str, body: schemas.GoldItemsCreate, ctx: Ctx, _: Admin) -> list[schemas.GoldItem]:
        lines = [{"input": i.input, "answer": i.answer, "note": i.note} for i in body.items]

        def run(s: Session) -> list[schemas.GoldItem]:
            return [gold_item(s, name, item, {}) for item in gold.add_items(s, name, lines, now_ms=ctx.clock.now_ms())]

        return ctx.write(run)

    @api.get("/flows/{name}/gold/items/{item_id}", response_model=schemas.GoldItem, tags=["gold and quality"])
    def get_item(name: str, item_id: int, ctx: Ctx, _: Admin) -> schemas.GoldItem:
        with ctx.db.read() as s:
            item = gold.get_item(s, name, item_id)
            return gold_item(s, name, item, gold.served_counts(s, get_flow(s, name)))

    @api.delete("/flows/{name}/gold/items/{item_id}", status_code=204, tags=["gold and quality"])
    def delete_item(name: str, item_id: int, ctx: Ctx, _: Admin) -> None:
        ctx.write(lambda s: gold.delete_item(s, name, item_id))

    @api.get("/flows/{name}/workers/quality", response_model=schemas.WorkerQuality, tags=["gold and quality"])
    def quality(name: str, ctx: Ctx, _: Admin) -> schemas.WorkerQuality:
        with ctx.db.read() as s:
            return quality_report(s, name, now_ms=ctx.clock.now_ms())

    @api.post("/flows/{name}/workers/{email}/unpause", status_code=204, tags=["gold and quality"])
    def unpause(name: str, email: str, ctx: Ctx, _: Admin) -> None:
        ctx.write(lambda s: worker_quality.unpause(s, name, email, now_ms=ctx.clock.now_ms()))
