"""`serve --processes N`: N API processes sharing one port, watched by a small supervisor.

Each API process is a real OS process (multiprocessing's `spawn`: a fresh interpreter, nothing
inherited but the environment and the command's arguments) with its own listening socket on the
same host and port, bound with SO_REUSEPORT: the kernel spreads new connections over the processes
(by a hash of each connection's addresses, so one keep-alive connection stays with one process).
A process that dies takes only its own socket with it; the others keep accepting.

The supervisor (the parent, `Supervisor.run`) owns the lifecycle and nothing else (it serves no
request):
- it starts N children and waits until each says it listens (`ChildLink.ready`) or why it cannot
  (`ChildLink.failed`); one that cannot at the first start stops everything: the cause (a port, the
  configuration) is the same for every try, so trying again would only loop;
- a child that dies later is started again after a backoff (1, 2, 4... up to 30 s, logged); after
  MAX_QUICK_DEATHS deaths in a row, each within STABLE_SECONDS of its start, the supervisor stops
  the others and exits non-zero with the last reason instead of looping forever;
- SIGTERM or SIGINT stops every child gracefully (each finishes its requests, writes its usage
  counters and closes); a second signal kills them at once; a child still running STOP_SECONDS
  after the stop began is killed.

Children stop once whatever number of signals they get (a terminal's Ctrl-C reaches the whole
process group as well as the parent's forwarded SIGTERM; systemd's default KillMode signals every
process of the unit), and stop by themselves when the parent disappears (SIGKILLed): they never
outlive it.

Nothing here knows about Oui Post's app: `ouipost.cli` gives the child's function (`target`,
called as `target(*args, link)`) and what to print once everything listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import web

log = logging.getLogger("ouipost.supervisor")

STABLE_SECONDS = 60.0  # a child that lived this long was healthy: its death starts the count anew
MAX_QUICK_DEATHS = 5  # deaths in a row, each before STABLE_SECONDS, after which the supervisor gives up
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # before the 1st, 2nd... restart of a slot
STOP_SECONDS = 45.0  # how long children may take to stop gracefully before they are killed


class ChildLink:
    """The child's end of its line to the supervisor (picklable: it goes to the child as an argument)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stopping = False

    def ready(self) -> None:
        """Say that this child listens and serves."""
        self._send(("ready",))

    def failed(self, reason: str) -> None:
        """Say why this child cannot start (one line, shown by the supervisor); then exit non-zero."""
        self._send(("failed", reason))

    def _send(self, message: tuple[str, ...]) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone: nobody to tell
            self._conn.send(message)

    async def on_startup(self, app: web.Application) -> None:
        """An `on_startup` hook, appended last: stop once on SIGTERM/SIGINT, stop when the parent
        is gone, and say ready (the socket listens already; the app is set up)."""
        loop = asyncio.get_running_loop()
        # aiohttp's own handlers raise GracefulExit on every signal, also while the app is cleaning
        # up after the first one (which would cut the usage flush short): ours raise it once.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop_once)
        parent = multiprocessing.parent_process()
        if parent is not None:
            # The parent's sentinel becomes readable when the parent is gone (even SIGKILLed).
            loop.add_reader(parent.sentinel, self._parent_gone, loop, parent.sentinel)
        self.ready()

    def _stop_once(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        raise web.GracefulExit()

    def _parent_gone(self, loop: asyncio.AbstractEventLoop, sentinel: int) -> None:
        loop.remove_reader(sentinel)
        log.warning("the supervisor is gone: this API process stops")
        self._stop_once()


def _child_main(target: Callable[..., None], args: Sequence[Any], link: ChildLink) -> None:
    """What a child process runs: `target(*args, link)`."""
    target(*args, link)


@dataclass
class _Child:
    slot: int
    process: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    started_at: float = field(default_factory=time.monotonic)
    failure: str | None = None  # what the child said when it could not start
    serving: bool = False  # said ready: from then on a stop must be clean

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def exit_reason(self) -> str:
        if self.failure:
            return self.failure
        code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
            return f"killed by signal {-code}"
        return f"exited with code {code}"


class Supervisor:
    """Start `processes` children running `target(*args, link)`, keep them running, stop them.

    `run()` returns the exit status for the command: 0 after a stop asked by a signal in which
    every child stopped cleanly, 1 otherwise (`failure` then says why in one line).
    """

    def __init__(
        self, target: Callable[..., None], args: Sequence[Any], processes: int, *,
        on_ready: Callable[[list[int]], None] | None = None, name: str = "API process",
    ) -> None:
        self._target = target
        self._args = tuple(args)
        self._processes = processes
        self._on_ready = on_ready
        self._name = name
        self._context = multiprocessing.get_context("spawn")
        self.failure: str | None = None
        self._unclean: list[str] = []

    def run(self) -> int:
        return asyncio.run(self._run())

    async def _run(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._all_ready = asyncio.Event()
        self._ready_pids: dict[int, int] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        slots = [asyncio.create_task(self._keep_running(slot), name=f"slot-{slot + 1}")
                 for slot in range(self._processes)]
        await self._first(self._all_ready.wait(), self._stop.wait())
        if self._all_ready.is_set() and not self._stop.is_set() and self._on_ready is not None:
            self._on_ready([self._ready_pids[slot] for slot in sorted(self._ready_pids)])
        await asyncio.gather(*slots)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        log.info("every %s has stopped", self._name)
        if self.failure:
            return 1
        if self._unclean:
            self.failure = f"not every {self._name} stopped cleanly: " + "; ".join(self._unclean)
            return 1
        return 0

    def _on_signal(self, signum: int) -> None:
        if self._stop.is_set():
            log.warning("%s again: killing every %s now", signal.Signals(signum).name, self._name)
            self._force.set()
            return
        log.info("%s: stopping every %s gracefully", signal.Signals(signum).name, self._name)
        self._stop.set()

    def _give_up(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
            log.error("%s; stopping the others", reason)
        self._stop.set()

    # one slot ---------------------------------------------------------------------------------

    async def _keep_running(self, slot: int) -> None:
        """Run one child in `slot` until the stop, starting it again when it dies."""
        quick_deaths = 0
        while not self._stop.is_set():
            child = self._start(slot)
            ready = child.serving = await self._until_ready(child)
            if ready:
                log.info("%s %d of %d (pid %d) is serving", self._name, slot + 1, self._processes, child.pid)
                self._ready_pids[slot] = child.pid
                if len(self._ready_pids) == self._processes:
                    self._all_ready.set()
                await self._first(self._exited(child), self._stop.wait())
            if self._stop.is_set():
                await self._stop_child(child)
                child.conn.close()
                return
            await self._exited(child)  # reaped: its exit code is known
            child.conn.close()
            label = f"{self._name} {slot + 1} (pid {child.pid})"
            if not self._all_ready.is_set():
                # At the first start the cause is the same for every try (port, configuration).
                self._give_up(f"{self._name} {slot + 1} could not start: {child.exit_reason()}")
                return
            lived = time.monotonic() - child.started_at
            quick_deaths = quick_deaths + 1 if lived < STABLE_SECONDS else 1
            if quick_deaths >= MAX_QUICK_DEATHS:
                self._give_up(f"{label} keeps dying ({quick_deaths} times in a row within {STABLE_SECONDS:.0f} s "
                              f"of its start; last: {child.exit_reason()})")
                return
            delay = BACKOFF_SECONDS[min(quick_deaths, len(BACKOFF_SECONDS)) - 1]
            log.warning("%s %s after %.1f s; starting it again in %.0f s", label, child.exit_reason(), lived, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    def _start(self, slot: int) -> _Child:
        parent_end, child_end = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child_main, args=(self._target, self._args, ChildLink(child_end)),
            name=f"ouipost-{self._name.replace(' ', '-')}-{slot + 1}",
        )
        process.start()
        child_end.close()  # only the child writes: its end closes (EOF here) when it dies
        return _Child(slot, process, parent_end)

    async def _until_ready(self, child: _Child) -> bool:
        """True once the child says it serves; False when it dies first (with what it said) or the
        stop comes first."""
        while True:
            done = await self._first(_readable(child.conn.fileno()), self._exited(child), self._stop.wait())
            if self._stop.is_set() and done != 0:
                return False
            if done == 1:
                self._drain(child)
                return False
            try:
                message = child.conn.recv()
            except (EOFError, OSError):
                await self._exited(child)
                return False
            if message[0] == "ready":
                return True
            if message[0] == "failed":
                child.failure = str(message[1])

    def _drain(self, child: _Child) -> None:
        """Read what a dead child said before it died (its reason for not starting)."""
        with contextlib.suppress(EOFError, OSError):
            while child.conn.poll():
                message = child.conn.recv()
                if message[0] == "failed":
                    child.failure = str(message[1])

    async def _exited(self, child: _Child) -> None:
        if child.process.exitcode is None:
            await _readable(child.process.sentinel)
        child.process.join()

    async def _stop_child(self, child: _Child) -> None:
        """SIGTERM, then wait (SIGKILL after STOP_SECONDS, or at once on a second signal)."""
        if child.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
            done = await self._first(self._exited(child), self._force.wait(), asyncio.sleep(STOP_SECONDS))
            if done != 0:
                log.warning("%s %d (pid %d) did not stop in time: killed", self._name, child.slot + 1, child.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                await self._exited(child)
        else:
            await self._exited(child)
        # One still starting has nothing to finish: SIGTERM before its handlers are set ends it so.
        stopped_starting = not child.serving and child.process.exitcode == -signal.SIGTERM
        if child.process.exitcode != 0 and not stopped_starting:
            self._unclean.append(f"{self._name} {child.slot + 1} (pid {child.pid}) {child.exit_reason()}")

    @staticmethod
    async def _first(*awaitables: Any) -> int:
        """Wait for the first of `awaitables` to finish, cancel the others; its index."""
        tasks = [asyncio.ensure_future(a) for a in awaitables]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return next(i for i, t in enumerate(tasks) if t in done)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _readable(fileno: int) -> None:
    """Wait until `fileno` can be read (data, EOF, or a process sentinel that fired)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_reader(fileno, wake)
    try:
        await future
    finally:
        loop.remove_reader(fileno)
