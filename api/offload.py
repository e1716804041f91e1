"""Heavy work on big definitions, in a child process, under limits.

Reading, analysing, simplifying and drawing a definition of thousands of
steps takes seconds of pure Python. Run on one of the worker's request
threads it holds the interpreter's lock all that time, and every other
request of the worker waits its turn: a 20,000-step simplification made
another user's ``GET /api/cases/{id}`` take up to 1.8 s. Here such work runs
in a process of its own, forked from a clean server process (multiprocessing's
``forkserver``, with tinhgon's modules loaded once), so the worker's threads
go on answering.

Each job gets :attr:`Offload.seconds` of wall-clock time and
:data:`MEMORY_BYTES` of address space; beyond either it is stopped and the
request refused with the limit it met (:class:`LimitExceeded`). At most
:attr:`Offload.at_once` jobs run at once per worker; more wait for a free
place, up to the same time limit.

Small definitions are not worth a process (a fork and the pickling cost
more than their analysis): :meth:`Offload.run` works on them in the calling
thread, by the size of the text (:data:`OFFLOAD_BYTES`).
"""

from __future__ import annotations

import multiprocessing
import resource
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Final, TypeVar

from procedures.errors import TinhgonError
from procedures.messages import language, speaking, t

T = TypeVar("T")

MAX_STEPS: Final = 25_000
"""the most steps a stored definition may have (the service's limit; the command line has none)"""
OFFLOAD_BYTES: Final = 64 * 1024
"""a definition longer than this (about 600 steps) is worked on in a child process"""
MEMORY_BYTES: Final = 6 * 1024**3
"""the address space a child may take: a 20,000-step definition's simplification needs about 1 GiB"""
PRELOAD: Final = ["procedures", "procedures.analysis", "procedures.simplify", "procedures.diagram", "api.reform_work"]


class LimitExceeded(TinhgonError):
    """Work refused or stopped at one of the service's limits.

    ``limit`` names it (``steps``, ``upload_bytes``, ``seconds``,
    ``memory``); ``allowed`` is the limit's value, ``found`` what was met
    when known. The API answers 422 with both.
    """

    def __init__(self, limit: str, allowed: float, found: float | None, message: str) -> None:
        self.limit, self.allowed, self.found, self.message = limit, allowed, found, message
        super().__init__(limit, allowed, found, message)

    def __str__(self) -> str:
        return self.message


def _in_child(sender: Connection, spoken: str, work: Callable[..., Any], args: tuple[Any, ...]) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    try:
        with speaking(spoken):  # the request's language, for the errors the work raises
            outcome: tuple[bool, Any] = (True, work(*args))
    except MemoryError:
        outcome = (False, LimitExceeded("memory", MEMORY_BYTES, None, _memory_words()))
    except BaseException as error:  # handed to the parent, which raises it
        outcome = (False, error)
    try:
        sender.send(outcome)
    except Exception as error:  # the result or the error would not pickle
        sender.send((False, RuntimeError(f"{type(error).__name__}: {error}")))
    finally:
        sender.close()


def _memory_words() -> str:
    return t("over the memory limit of {gib} GiB for one analysis (limit: memory)", gib=MEMORY_BYTES // 1024**3)


class Offload:
    """Runs heavy functions in child processes; see the module's text."""

    def __init__(self, *, seconds: float, at_once: int = 2, threshold: int = OFFLOAD_BYTES) -> None:
        self.seconds = seconds
        self.at_once = at_once
        self.threshold = threshold
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._places = threading.BoundedSemaphore(at_once)

    def run(self, size: int, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)``: here when ``size`` (the text's length) is at most
        :attr:`threshold` (:data:`OFFLOAD_BYTES` unless told), else in a child process.

        ``work`` must be a module-level function, its arguments and result
        picklable. An exception it raises is raised here.

        Raises:
            LimitExceeded: the job ran out of time or memory, or waited for
                a free place longer than the time limit.
        """
        if size <= self.threshold:
            return work(*args)
        if not self._places.acquire(timeout=self.seconds):
            waited = t(
                "waiting for a turn took over {seconds} seconds, the time limit of one analysis (limit: seconds)",
                seconds=f"{self.seconds:g}",
            )
            raise LimitExceeded("seconds", self.seconds, None, waited)
        try:
            return self._child(work, args)
        finally:
            self._places.release()

    def _child(self, work: Callable[..., T], args: tuple[Any, ...]) -> T:
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(target=_in_child, args=(sender, language(), work, args), daemon=True)
        process.start()
        sender.close()
        try:
            if not receiver.poll(self.seconds):
                worked = t(
                    "the work took over {seconds} seconds, the time limit of one analysis (limit: seconds)",
                    seconds=f"{self.seconds:g}",
                )
                raise LimitExceeded("seconds", self.seconds, None, worked)
            try:
                ok, value = receiver.recv()
            except EOFError:  # killed: by the kernel when memory ran out, or by an operator
                raise LimitExceeded("memory", MEMORY_BYTES, None, _memory_words()) from None
        finally:
            if process.is_alive():
                process.kill()
            process.join()
            receiver.close()
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]
