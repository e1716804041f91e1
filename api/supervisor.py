"""The worker processes of ``tinhgon serve --workers N``: uvicorn's
supervisor, each worker listening on a socket of its own."""

from __future__ import annotations

import socket

from uvicorn.supervisors.multiprocess import Multiprocess, Process


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
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
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

    def init_processes(self) -> None:
        for sock in self.sockets[: self.processes_num]:
            process = Process(self.config, [sock])
            process.start()
            self.processes.append(process)
