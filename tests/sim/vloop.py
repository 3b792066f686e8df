"""An asyncio event loop on virtual time: it never waits, it jumps to the next timer."""

from __future__ import annotations

import asyncio
import contextvars
import selectors
from collections.abc import Callable, Coroutine
from typing import Any

# Which simulated node (name, incarnation) the running code belongs to; tasks inherit it.
OWNER: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "sim_owner", default=None
)


class Deadlock(RuntimeError):
    """Nothing is ready and no timer is set: the awaited result can never come."""


class _NoIOSelector(selectors.BaseSelector):
    """Holds registrations but never has I/O; select() advances the virtual clock instead."""

    def __init__(self, loop: VirtualLoop) -> None:
        self._loop = loop
        self._map: dict[int, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._map[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._map.pop(fd)

    def select(self, timeout: float | None = None) -> list:
        if timeout is None:
            raise Deadlock("the simulation has nothing left to run and nothing scheduled")
        if timeout > 0:
            self._loop.advance(timeout)
        return []

    def get_map(self) -> dict[int, selectors.SelectorKey]:
        return self._map

    def close(self) -> None:
        self._map.clear()


class VirtualLoop(asyncio.SelectorEventLoop):
    """Runs callbacks in the same order as a real loop, but sleeps take no real time.

    Timers fire in `when` order and ties in scheduling order, so a run depends only on
    what the code does, which with a seeded RNG makes the whole simulation repeatable.
    Tasks are tagged with the OWNER of the context that created them, so a crashed
    node's tasks can be found and cancelled.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        super().__init__(_NoIOSelector(self))
        # Insertion-ordered (a dict, not a set) so kill() cancels in a repeatable order.
        self.owned: dict[tuple[str, int], dict[asyncio.Task, None]] = {}
        self.set_task_factory(self._make_task)

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def _make_task(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        context: contextvars.Context | None = None,
    ) -> asyncio.Task:
        task = asyncio.Task(coro, loop=loop, context=context)
        owner = context.get(OWNER) if context is not None else OWNER.get()
        if owner is not None:
            tasks = self.owned.setdefault(owner, {})
            tasks[task] = None
            task.add_done_callback(lambda t: tasks.pop(t, None))
        return task

    def kill(self, owner: tuple[str, int]) -> int:
        """Cancel every task `owner` started; returns how many were running."""
        tasks = self.owned.pop(owner, {})
        for task in list(tasks):
            task.cancel()
        return len(tasks)

    def run_for(self, seconds: float) -> None:
        self.run_until_complete(asyncio.sleep(seconds))

    def run_in(self, context: contextvars.Context, factory: Callable[[], Any]) -> asyncio.Task:
        """Start the coroutine `factory()` as a task owned by `context`'s node."""
        return context.run(lambda: self.create_task(factory()))
