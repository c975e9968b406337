"""GET /metrics: the server as Prometheus sees it (text format, `prometheus-client`).

Requests by function and status, with their latency; the database pool (size, in use, waiting);
the stream (subscribers, events sent); whether the database is reachable; with read replicas,
which database answered each read and each read of the stream's feed, and whether each replica
serves and how far behind it is. What the exchange
holds (markets, money, trades) is the database's to say, in `analytics.*`; nothing here reads it.

Closed to the public: only the addresses in BETJEE_METRICS_ALLOW (addresses or networks,
comma-separated; default the loopback) may read it, as api/address.py names the client, so a
scraper behind the same trusted proxy is judged by its own address. Others get 403."""

from __future__ import annotations

import ipaddress
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.requests import Request
from starlette.responses import Response

from api.address import Network, client_address
from api.errors import error

UNKNOWN = "(unknown)"  # a function name the catalog does not hold: one label, however many names


def allowed(value: str | None = None) -> tuple[Network, ...]:
    value = os.environ.get("BETJEE_METRICS_ALLOW", "127.0.0.1,::1") if value is None else value
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in value.split(",") if v.strip())


class Metrics:
    """One registry per application (tests start several in one process)."""

    def __init__(self, app_state) -> None:
        self.state = app_state
        self.allow = allowed()
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("betjee_requests", "RPC calls answered, by function and HTTP status",
                                ["function", "status"], registry=self.registry)
        self.latency = Histogram("betjee_request_seconds", "Time to answer an RPC call, by function",
                                 ["function"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.reads = Counter("betjee_reads", "Calls of read-only functions answered, by the "
                             "database that answered them (primary, replica1, replica2, ...)",
                             ["database"], registry=self.registry)
        self.registry.register(self)

    def read(self, database: str) -> None:
        self.reads.labels(database).inc()

    def observe(self, function: str, status: int, started: float) -> None:
        name = function if function in self.state.catalog.functions else UNKNOWN
        self.requests.labels(name, str(status)).inc()
        self.latency.labels(name).observe(time.perf_counter() - started)

    def collect(self):
        """What is read at scrape time: the pool, the stream, the database's reachability."""
        stats = self.state.pool.get_stats()
        size = stats.get("pool_size", 0)
        yield GaugeMetricFamily("betjee_pool_connections", "Database connections the pool holds", size)
        yield GaugeMetricFamily("betjee_pool_in_use", "Pool connections serving a call now",
                                size - stats.get("pool_available", 0))
        yield GaugeMetricFamily("betjee_pool_waiting", "Calls waiting for a pool connection",
                                stats.get("requests_waiting", 0))
        yield GaugeMetricFamily("betjee_pool_max", "The pool's largest size", self.state.pool.max_size)
        broadcaster = self.state.broadcaster
        yield GaugeMetricFamily("betjee_stream_subscribers", "Open streams (GET /api/v1/stream)",
                                len(broadcaster.subscribers))
        yield CounterMetricFamily("betjee_stream_events", "Change events written to streams",
                                  broadcaster.events_sent)
        yield GaugeMetricFamily("betjee_database_up",
                                "1 while the stream's connection reaches the database, else 0",
                                1 if broadcaster.connected.is_set() else 0)
        polls = CounterMetricFamily("betjee_stream_polls", "Reads of the change feed by the "
                                    "stream, by the database that answered", labels=["database"])
        for database, n in sorted(broadcaster.polls.items()):
            polls.add_metric([database], n)
        yield polls
        if self.state.replicas is not None:
            serving = GaugeMetricFamily("betjee_replica_serving", "1 while a replica serves reads",
                                        labels=["replica"])
            lag = GaugeMetricFamily("betjee_replica_lag_seconds", "How far behind the primary a "
                                    "replica was when last asked (+Inf: not answering)",
                                    labels=["replica"])
            for r in self.state.replicas.members:
                serving.add_metric([r.name], 1 if r.serving else 0)
                lag.add_metric([r.name], r.lag)
            yield serving
            yield lag

    def describe(self):
        return []

    async def endpoint(self, request: Request) -> Response:
        address = client_address(request, self.state.trusted)
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            ip = None
        if ip is None or not any(ip in net for net in self.allow):
            return error(403, "PGRST403", "the metrics are not public",
                         hint="BETJEE_METRICS_ALLOW names the addresses that may read them")
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
