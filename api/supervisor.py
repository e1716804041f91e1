"""How ``tinhgon serve`` runs uvicorn: its settings, and with ``--workers N``
uvicorn's supervisor with each worker listening on a socket of its own."""

from __future__ import annotations

import contextlib
import inspect
import socket
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from . import metrics
from .logs import log_config


def run(
    app: str,
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    log_format: str = "text",
    sockets: list[socket.socket] | None = None,
) -> None:
    """Serve the app factory named ``app`` (``module:function``) until
    stopped, in this process for one worker, else in ``workers`` worker
    processes on ``sockets`` (bound here when not given, see
    :func:`worker_sockets`, which are closed at the end), which keep their
    metrics in one directory (:func:`api.metrics.multiprocess_directory`).
    ``log_format`` is ``text`` (uvicorn's) or ``json`` (:mod:`api.logs`)."""
    options: dict[str, Any] = {"host": host, "port": port, "log_level": log_level, "timeout_graceful_shutdown": 10}
    config = log_config(log_format, log_level)
    if config is not None:
        options["log_config"] = config
        options["access_log"] = False  # tinhgon's access lines (api.observe) name the route, uvicorn's the raw path
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:  # uvicorn >= 0.37
        # A new worker answers the supervisor's ping only once it has imported
        # the service (seconds on a busy machine); after the default 5 s it
        # is killed as hung and started again, over and over under load.
        options["timeout_worker_healthcheck"] = 30
    if workers <= 1:
        uvicorn.run(app, factory=True, **options)
        return
    sockets = sockets if sockets is not None else worker_sockets(host, port, workers)
    try:
        with contextlib.suppress(KeyboardInterrupt), metrics.multiprocess_directory() as folder:
            Workers(uvicorn.Config(app, factory=True, workers=workers, **options), sockets, folder).run()
    finally:
        for sock in sockets:
            sock.close()


def refuse_taken(host: str, port: int) -> None:
    """Raise ``OSError`` (address in use) when something listens on
    ``host:port`` already: a plain bind, let go at once."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def worker_sockets(host: str, port: int, count: int, backlog: int = 2048) -> list[socket.socket]:
    """``count`` listening sockets on one address, each with ``SO_REUSEPORT``,
    for one worker each: the kernel then spreads new connections over them
    by their addresses. (On one shared socket, a burst of connections goes
    to whichever worker accepts first, which takes them all: 16 connections
    opened at once all landed on one of two workers.)

    ``SO_REUSEPORT`` would also let another server of the same user share
    the port silently, so the address is first bound plainly: that fails,
    as a server's bind should, when anything already listens there
    (another ``tinhgon serve`` included, whose sockets are bound the same
    way). Port 0 takes one free port for all of them."""
    family = _family(host)
    if port:
        refuse_taken(host, port)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Workers(Multiprocess):
    """uvicorn's supervisor of worker processes (health checks, restarts,
    signals), with each first worker on a listening socket of its own (see
    :func:`worker_sockets`).

    A worker started later (after one died, on ``SIGHUP`` or ``SIGTTIN``)
    listens on every socket, so that none is ever left without a worker
    while a replacement starts: the parent keeps them all open, and the
    connections waiting on a dead worker's socket are taken up by its
    replacement rather than refused."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], metrics_folder: str | None = None) -> None:
        super().__init__(config, sockets)
        self.metrics_folder = metrics_folder

    def init_processes(self) -> None:
        for sock in self.sockets[: self.processes_num]:
            process = Process(self.config, [sock])
            process.start()
            self.processes.append(process)

    # A worker that ended (died, or replaced on SIGHUP) no longer counts in
    # the live gauges of a scrape (the writer's queue, the sealer's lag).
    def keep_subprocess_alive(self) -> None:
        self._replacing(super().keep_subprocess_alive)

    def restart_all(self) -> None:
        self._replacing(super().restart_all)

    def _replacing(self, replace: Any) -> None:
        before = {p.pid for p in self.processes}
        replace()
        if self.metrics_folder is not None:
            for pid in before - {p.pid for p in self.processes}:
                if pid is not None:
                    metrics.worker_gone(pid, self.metrics_folder)
