"""Running an app's lifespan outside a server, for tests and benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

# The lifespan's periodic jobs (tus clean-up, orphan sweep) switched off: for an app whose sessions
# all share the test's one connection, where a job's statements would land in a request's.
NO_PERIODIC_JOBS = {"tus_cleanup_interval_seconds": 0, "orphan_sweep_interval_seconds": 0}


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run the app's lifespan in a task of its own, as a server would: pytest may finish an async
    fixture in another task than it started it in, and task groups of the lifespan (background
    jobs) must be exited by the task that entered them."""
    started = asyncio.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await stop.wait()

    task = asyncio.create_task(serve())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # start-up failed: raise its error here
    try:
        yield app
    finally:
        stop.set()
        await task
