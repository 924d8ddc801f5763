"""The flows a loop start reads, kept per process and checked against a generation number.

Every transaction that adds, changes or deletes a flow definition or a flow's gold settings
through the ORM also draws a new number for the ``generations`` row "flows" (a session hook, below), in the
same transaction.
A start reads that one row (once per transaction) instead of the flow row and the list of
every flow's output location, and uses the copies this process made at that generation;
any other generation empties the cache. So a change committed by any process is seen by
every start whose transaction reads the generation after that commit, as if it had read
the flow itself.

A session that changed flows itself (not committed yet) bypasses the cache: its rows may
still be rolled back. Rows edited with SQL behind loopin's back are seen after a restart
or the next change made through loopin.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from sqlalchemy import event, inspect, select, update
from sqlalchemy.orm import Session

from loopin import flows
from loopin.models import FlowDefinition, Generation, GoldSettings

NAME = "flows"  # the generations row
_GENERATION = "loopin.flow_generation"  # key in Session.info: the generation this transaction read
_CHANGED = "loopin.flows_changed"  # key in Session.info: this transaction changed flows


@dataclass
class _Cache:
    generation: int
    flows: dict[str, FlowDefinition] = field(default_factory=dict)
    by_id: dict[int, FlowDefinition] = field(default_factory=dict)
    output_paths: list[str] | None = None
    gold_rates: dict[int, float] | None = None


_READ_GENERATION = select(Generation.value).where(Generation.name == NAME)  # built once: every start reads it
_lock = threading.Lock()
_cache = _Cache(-1)  # no generation is negative


def get_flow(session: Session, name: str) -> FlowDefinition:
    """``flows.get_flow``, from the cache when it is current. The flow returned may be a
    copy that belongs to no session: read it, never change it or add it to a session."""
    cache = _current(session)
    if cache is None:
        return flows.get_flow(session, name)
    flow = cache.flows.get(name)
    if flow is None:
        flow = _copy(flows.get_flow(session, name))
        with _lock:
            cache.flows[name] = flow
    return flow


def get_flow_by_id(session: Session, flow_id: int) -> FlowDefinition:
    """``Session.get_one(FlowDefinition, flow_id)``, from the cache when it is current; the
    same rule as ``get_flow``: a copy to read, never to change."""
    cache = _current(session)
    if cache is None:
        return session.get_one(FlowDefinition, flow_id)
    flow = cache.by_id.get(flow_id)
    if flow is None:
        flow = _copy(session.get_one(FlowDefinition, flow_id))
        with _lock:
            cache.by_id[flow_id] = flow
    return flow


def output_paths(session: Session) -> Sequence[str]:
    """Every flow's output location (``flows.output_paths``), from the cache when current."""
    cache = _current(session)
    if cache is None:
        return flows.output_paths(session)
    paths = cache.output_paths
    if paths is None:
        paths = cache.output_paths = list(flows.output_paths(session))
    return paths


def gold_rates(session: Session) -> dict[int, float]:
    """The gold rate of every flow that draws gold (rate above 0), by flow id; from the
    cache when current (a claim asks on every call)."""
    cache = _current(session)
    if cache is None:
        return _read_gold_rates(session)
    rates = cache.gold_rates
    if rates is None:
        rates = cache.gold_rates = _read_gold_rates(session)
    return rates


def _read_gold_rates(session: Session) -> dict[int, float]:
    query = select(GoldSettings.flow_id, GoldSettings.rate).where(GoldSettings.rate > 0)
    return {flow_id: rate for flow_id, rate in session.execute(query)}


def _current(session: Session) -> _Cache | None:
    global _cache
    if session.info.get(_CHANGED) or _changes_flows(session):
        return None
    generation = session.info.get(_GENERATION)
    if generation is None:
        generation = session.info[_GENERATION] = session.scalar(_READ_GENERATION)
        if generation is None:  # not migrated this far: no cache
            return None
    with _lock:
        if _cache.generation != generation:
            _cache = _Cache(generation)
        return _cache


def _copy(flow: FlowDefinition) -> FlowDefinition:
    """A copy of the loaded row that no session holds: changes to the original (in its
    own session) never reach the cache."""
    return FlowDefinition(**{c.key: getattr(flow, c.key) for c in inspect(FlowDefinition).column_attrs})


@event.listens_for(Session, "before_flush")
def _note_flow_changes(session: Session, _context: Any, _instances: Any) -> None:
    """A new generation in the transaction that adds, changes or deletes a flow."""
    if not session.info.get(_CHANGED) and _changes_flows(session):
        session.info[_CHANGED] = True
        # Core, on the session's connection: no ORM flush machinery inside a flush.
        session.connection().execute(
            update(Generation).where(Generation.name == NAME).values(value=random.getrandbits(62))
        )


def _changes_flows(session: Session) -> bool:
    """Whether the session holds changes to flows (or their gold settings) not flushed yet."""
    kept = (FlowDefinition, GoldSettings)
    return any(isinstance(o, kept) for o in chain(session.new, session.deleted)) or any(
        isinstance(o, kept) and session.is_modified(o) for o in session.dirty
    )


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_GENERATION, None)
    session.info.pop(_CHANGED, None)
