"""Running the blocking service layer off the event loop, each thread with its own Context.

The service calls block (SQLite, subprocesses, flock, QEMU's boot), so handlers run them in threads.
A Context holds one SQLite connection, which is not to be shared between threads: every pool thread
opens its own on first use (threading.local), on the server's state root. Operations that may block for
as long as a client likes (wait, logs --follow, a pull) get a thread of their own instead of a pool
slot, so a few hundred waiting clients never starve the quick calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from isobox.service.context import Context, open_context

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
POOL_THREADS = 32
_END = object()


class Workers:
    def __init__(self, root: Path | None, *, threads: int = POOL_THREADS) -> None:
        self.root = root
        self._local = threading.local()
        self._contexts: list[Context] = []
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="isobox-api")

    def context(self) -> Context:
        """This thread's Context (opened on first use)."""
        ctx: Context | None = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = open_context(self.root)
            self._local.ctx = ctx
            with self._lock:
                self._contexts.append(ctx)
        return ctx

    async def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """``fn(ctx, *args, **kwargs)`` in a pool thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self.context(), *args, **kwargs))

    async def call_long(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """``fn(ctx, *args, **kwargs)`` in a thread of its own, with a Context closed when it returns."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(value: T | None, error: BaseException | None) -> None:
            if future.cancelled():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)  # type: ignore[arg-type]

        def body() -> None:
            try:
                with self._own_context() as ctx:
                    value = fn(ctx, *args, **kwargs)
            except BaseException as exc:  # handed to the awaiting handler, which answers with it
                loop.call_soon_threadsafe(settle, None, exc)
                return
            loop.call_soon_threadsafe(settle, value, None)

        threading.Thread(target=body, name="isobox-api-long", daemon=True).start()
        return await future

    def iterate(self, produce: Callable[[Context], Iterator[T]], gone: threading.Event,
                *, queue_items: int = 64) -> AsyncIterator[T]:
        """The items of ``produce(ctx)``, made in a thread of their own and handed over through a bounded
        queue (a slow client slows the producer down). The producer stops at its next item once ``gone``
        is set, which the server does when the client goes away."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue(queue_items)

        def put(item: object) -> bool:
            while not gone.is_set():
                future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
                try:
                    future.result(timeout=1.0)
                    return True
                except concurrent.futures.TimeoutError:
                    future.cancel()
                except RuntimeError:  # the loop closed: the server is shutting down
                    return False
            return False

        def body() -> None:
            try:
                with self._own_context() as ctx:
                    for item in produce(ctx):
                        if not put(item):
                            return
            except BaseException as exc:
                put(_Failure(exc))
                return
            put(_END)

        threading.Thread(target=body, name="isobox-api-stream", daemon=True).start()
        return _drain(queue)

    @contextlib.contextmanager
    def _own_context(self) -> Iterator[Context]:
        ctx = open_context(self.root)
        try:
            yield ctx
        finally:
            ctx.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for ctx in self._contexts:
                with contextlib.suppress(Exception):
                    ctx.close()
            self._contexts.clear()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _drain(queue: asyncio.Queue[object]) -> AsyncIterator[Any]:
    while True:
        item = await queue.get()
        if item is _END:
            return
        if isinstance(item, _Failure):
            raise item.error
        yield item


def root_from_env() -> Path | None:
    value = os.environ.get("ISOBOX_ROOT")
    return Path(value) if value else None
