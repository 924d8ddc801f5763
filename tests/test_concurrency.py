"""Claiming under concurrency: two `loopin serve` processes on one PostgreSQL database,
and one process with many threads on SQLite. Every slot is claimed exactly once and no
worker ever gets two slots of one loop."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from loopin.client import Client, WorkerClient
from tests.helpers import PASSWORD, setup_flow
from tests.servers import create_key, loopin_env, serve

pytestmark = pytest.mark.slow


def _run_threads(count: int, target) -> None:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # surfaced below, so a failing thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:3]


def _claim_everything(urls: list[str], key: tuple[str, str], *, loops: int, threads_per_server: int) -> None:
    threads = len(urls) * threads_per_server
    admin = Client(urls[0], access_key_id=key[0], secret_access_key=key[1])
    setup_flow(admin, workers=threads, task_count=2, time_limit=3600)
    names = [f"c-{i:05d}" for i in range(loops)]
    created: Counter[int] = Counter()
    lock = threading.Lock()

    def start(t: int) -> None:
        client = Client(urls[t % len(urls)], access_key_id=key[0], secret_access_key=key[1])
        # Every name is started by two threads at once: one creates, the other gets it back.
        for i in range(t % threads, loops, threads):
            for name_index in (i, (i + 1) % loops):
                started = client.start_loop(names[name_index], flow="review", input={"i": name_index})
                if started.created:
                    with lock:  # += on a shared Counter is not atomic across threads
                        created[name_index] += 1

    _run_threads(threads, start)
    assert sorted(created) == list(range(loops)) and set(created.values()) == {1}

    claims: list[tuple[str, int, int]] = []  # (worker, task id, loop index)

    def work(t: int) -> None:
        email = f"worker{t}@myteam.example"
        worker = WorkerClient.sign_in(urls[t % len(urls)], email, PASSWORD)
        while (task := worker.next_task("review")) is not None:
            worker.submit(task.task_id, {"by": email})
            with lock:
                claims.append((email, task.task_id, task.input["i"]))

    _run_threads(threads, work)
    task_ids = Counter(task_id for _, task_id, _ in claims)
    assert len(task_ids) == 2 * loops, "every slot claimed"
    assert max(task_ids.values()) == 1, "0 double assignments"
    per_loop = defaultdict(set)
    for email, _, i in claims:
        per_loop[i].add(email)
    assert all(len(per_loop[i]) == 2 for i in range(loops)), "two distinct workers per loop"
    statuses = Counter(loop.status for loop in admin.iter_loops(flow="review"))
    assert statuses == {"Completed": loops}


def test_two_processes_sixteen_threads_each_on_postgresql(tmp_path: Path, pg_database: str) -> None:
    env = loopin_env(tmp_path / "data", pg_database)
    key = create_key(env)
    with serve(env) as first, serve(env) as second:
        _claim_everything([first, second], key, loops=600, threads_per_server=16)


def test_one_process_sixteen_threads_on_sqlite(tmp_path: Path) -> None:
    env = loopin_env(tmp_path / "data", f"sqlite:///{tmp_path / 'loopin.db'}")
    key = create_key(env)
    with serve(env) as url:
        _claim_everything([url], key, loops=300, threads_per_server=16)


@pytest.fixture(autouse=True)
def _pg(pg_ok: bool) -> None:
    """Needs PostgreSQL only for the PostgreSQL test (see pg_database)."""
