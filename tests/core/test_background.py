"""BackgroundTasks: tracked tasks, failures logged, drained at shutdown with a grace."""

from __future__ import annotations

import asyncio

from parley.core.background import BackgroundTasks


async def _sleep(seconds: float, done: list[float]) -> None:
    await asyncio.sleep(seconds)
    done.append(seconds)


async def test_a_task_is_forgotten_when_it_ends_and_its_failure_is_logged(caplog):
    async def fail() -> None:
        raise ValueError("boom")

    tasks = BackgroundTasks("group")
    task = tasks.spawn(fail())
    assert len(tasks) == 1 and tasks.running() == [task]
    await tasks.wait()
    assert len(tasks) == 0
    assert any(r.getMessage() == "group: background task failed" for r in caplog.records)


async def test_drain_without_a_grace_gives_the_longest_grace_tasks_were_spawned_with():
    done: list[float] = []
    tasks = BackgroundTasks("group")
    tasks.spawn(_sleep(0.05, done), grace=0.0)
    tasks.spawn(_sleep(0.1, done), grace=1.0)
    tasks.spawn(_sleep(30, done))
    async with asyncio.timeout(5):
        await tasks.drain()
    assert done == [0.05, 0.1] and len(tasks) == 0  # the 30 s one was cancelled after 1 s


async def test_a_grace_given_to_drain_wins():
    done: list[float] = []
    tasks = BackgroundTasks("group")
    tasks.spawn(_sleep(0.2, done), grace=10.0)
    async with asyncio.timeout(5):
        await tasks.drain(0.0)
    assert done == [] and len(tasks) == 0


async def test_drain_without_graces_cancels_at_once():
    done: list[float] = []
    tasks = BackgroundTasks("group")
    tasks.spawn(_sleep(0.2, done))
    await tasks.drain()
    assert done == [] and len(tasks) == 0


async def test_a_held_task_is_drained_like_a_spawned_one() -> None:
    """A task the set did not start (a framework's handler) counts while it is held."""
    tasks = BackgroundTasks("held")
    gate = asyncio.Event()
    finished = []

    async def handler() -> None:
        with tasks.holding(asyncio.current_task()):
            await gate.wait()
            finished.append("held")
        await asyncio.sleep(3600)  # the framework's own work after the handler: not held

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    assert len(tasks) == 1
    asyncio.get_running_loop().call_later(0.05, gate.set)
    await tasks.drain(1.0)  # waits for the held part, not for the framework's sleep
    assert finished == ["held"] and len(tasks) == 0
    task.cancel()
