"""What the service counts, for Prometheus (prometheus-client).

Requests are counted by route *template* (``/api/cases/{case_id}``, never
the raw path: ids would make a label value per case), method and status,
with a latency histogram; case actions by what became of them and, for a
refusal, its reason (the problem's ``type`` slug); the SQLite writer's
queue; the audit sealer's lag (fed by the sealer through
:func:`set_sealer_lag`); the time analyses and simplifications take.

With several workers (``tinhgon serve --workers N``) each worker is a
process of its own: the supervisor gives them one directory in
``$PROMETHEUS_MULTIPROC_DIR`` (:func:`multiprocess_directory`), in which
prometheus-client keeps every worker's values, and a scrape, whichever
worker answers it, reads them all (:func:`exposition`): counters and
histograms summed over every worker that ran (a worker that died keeps
counting in the total), the writer's queue summed over the live workers,
the sealer's lag their largest.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

__all__ = [
    "CONTENT_TYPE",
    "Network",
    "action_answered",
    "allowed",
    "allowed_networks",
    "exposition",
    "multiprocess_directory",
    "request_answered",
    "set_sealer_lag",
    "timed",
    "worker_gone",
    "writer_joined",
    "writer_left",
]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
ALLOW_ENV: Final = "TINHGON_METRICS_ALLOW"
LOOPBACK: Final = "127.0.0.0/8,::1"
"""who may read ``/metrics`` unless the operator says otherwise"""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""methods counted by name; any other is ``other`` (a client may send any token)"""

_REQUESTS = Counter(
    "tinhgon_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
_LATENCY = Histogram(
    "tinhgon_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_ACTIONS = Counter(
    "tinhgon_case_actions",
    "Case actions (act, withdraw) answered: result accepted, replayed (an Idempotency-Key's stored answer) or refused,"
    " with the refusal's reason (its problem type)",
    ["action", "result", "reason"],
)
_WRITER_QUEUE = Gauge(
    "tinhgon_sqlite_writer_queue",
    "SQLite: case actions queued for the worker's writer thread or in its transaction now",
    multiprocess_mode="livesum",
)
_SEALER_LAG = Gauge(
    "tinhgon_audit_sealer_lag_seconds",
    "How far the audit sealer is behind the newest event, in seconds",
    multiprocess_mode="livemax",
)
_ANALYSIS = Histogram(
    "tinhgon_analysis_seconds",
    "Time an analysis (metrics and findings) or a simplification of a procedure took",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


_answered: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
"""the children of each (method, route, status) met, bounded as the labels are"""


def request_answered(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request (see :class:`api.observe.Observed`)."""
    key = (method if method in METHODS else "other", route, status)
    children = _answered.get(key)
    if children is None:  # labels() costs more than the count itself: each label set's children are kept
        children = _answered[key] = (_REQUESTS.labels(key[0], route, str(status)), _LATENCY.labels(key[0], route))
    children[0].inc()
    children[1].observe(seconds)


def action_answered(action: str, result: str, reason: str = "") -> None:
    """Count one case action: ``result`` is ``accepted``, ``replayed`` or
    ``refused`` (then ``reason`` is the problem's ``type`` slug)."""
    _ACTIONS.labels(action, result, reason).inc()


def writer_left() -> None:
    """One action left the SQLite writer's queue (its outcome is known)."""
    _WRITER_QUEUE.dec()


def writer_joined() -> None:
    """One action joined the SQLite writer's queue."""
    _WRITER_QUEUE.inc()


def set_sealer_lag(seconds: float) -> None:
    """The audit sealer's lag behind the newest event, in seconds (the
    sealer calls this; with several workers a scrape shows the largest of
    the live workers' values)."""
    _SEALER_LAG.set(seconds)


@contextlib.contextmanager
def timed(operation: str) -> Iterator[None]:
    """Observe the block's duration in ``tinhgon_analysis_seconds`` under
    ``operation`` (``analysis`` or ``simplify``), whether or not it raised."""
    start = time.perf_counter()
    try:
        yield
    finally:
        _ANALYSIS.labels(operation).observe(time.perf_counter() - start)


def exposition() -> bytes:
    """The metrics in Prometheus' text format: this process's, or with
    ``$PROMETHEUS_MULTIPROC_DIR`` set every worker's (see the module's
    description)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def allowed_networks(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated list of addresses and CIDR
    networks (``127.0.0.1,10.0.0.0/8,::1``); an address alone is a network
    of one.

    Raises:
        ValueError: an item is neither an address nor a network (named in the message).

    >>> [str(n) for n in allowed_networks("127.0.0.1, 10.0.0.0/8")]
    ['127.0.0.1/32', '10.0.0.0/8']
    """
    networks: list[Network] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is neither an IP address nor a network such as 10.0.0.0/8") from None
    if not networks:
        raise ValueError("no address given: name at least one, e.g. 127.0.0.1")
    return tuple(networks)


def allowed(host: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether a client at ``host`` may read the metrics. An IPv4 address
    reached over IPv6 (``::ffff:10.1.2.3``) counts as the IPv4 one;
    anything that is not an address (a Unix socket, a test client) may not.

    >>> allowed("::ffff:127.0.0.1", allowed_networks("127.0.0.1"))
    True
    >>> allowed("testclient", allowed_networks("127.0.0.1"))
    False
    """
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


@contextlib.contextmanager
def multiprocess_directory() -> Iterator[str | None]:
    """For the supervisor of several workers: ``$PROMETHEUS_MULTIPROC_DIR``
    set to a fresh private directory while the block runs, removed after;
    an operator's own setting is used as it is (and left in place)."""
    if os.environ.get(MULTIPROC_ENV):
        yield os.environ[MULTIPROC_ENV]
        return
    folder = tempfile.mkdtemp(prefix="tinhgon-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield folder
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def worker_gone(pid: int, folder: str) -> None:
    """A worker process ended: its live gauges (the writer's queue, the
    sealer's lag) no longer count; its counters still do."""
    multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
