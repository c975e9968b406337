"""GET /metrics (api/metrics.py): the Prometheus text format, counting what the server did, and
closed to anyone BETJEE_METRICS_ALLOW does not name."""

from __future__ import annotations

import socket
import threading
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_server


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, keyed by name and sorted labels."""
    response = httpx.get(base + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_calls_by_function_and_status_with_their_latency(server, http, make_market):
    market = make_market()
    before = scrape(server)
    token = http.post("/api/v1/rpc/signup", json={"username": f"metrics{time.time_ns() % 10**9}",
                                                  "password": "password123"}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert http.get("/api/v1/rpc/list_markets").status_code == 200
    assert http.get("/api/v1/rpc/list_markets").status_code == 200
    assert http.post("/api/v1/rpc/trade", headers=auth, json={"market": market, "outcome": "YES", "side": "buy",
                                                               "shares": 1}).status_code == 200
    assert http.post("/api/v1/rpc/trade", headers=auth, json={"market": market, "outcome": "YES", "side": "buy",
                                                               "shares": -1}).status_code == 400
    assert http.post("/api/v1/rpc/no_such_function_1", json={}).status_code == 404
    assert http.post("/api/v1/rpc/no_such_function_2", json={}).status_code == 404
    after = scrape(server)
    grew = {key: after[key] - before.get(key, 0.0) for key in after if after[key] != before.get(key, 0.0)}

    assert value(grew, "betjee_requests_total", function="list_markets", status="200") == 2
    assert value(grew, "betjee_requests_total", function="trade", status="200") == 1
    assert value(grew, "betjee_requests_total", function="trade", status="400") == 1
    assert value(grew, "betjee_requests_total", function="signup", status="200") == 1
    # names the catalog does not hold share one label (no label per name a client invents)
    assert value(grew, "betjee_requests_total", function="(unknown)", status="404") == 2
    assert not [k for k in after if "no_such_function" in str(k)]
    assert value(grew, "betjee_request_seconds_count", function="trade") == 2
    assert value(grew, "betjee_request_seconds_sum", function="trade") > 0
    assert value(grew, "betjee_request_seconds_bucket", function="trade", le="+Inf") == 2
    # the pool and the database
    assert value(after, "betjee_pool_max") >= 1
    assert 1 <= value(after, "betjee_pool_connections") <= value(after, "betjee_pool_max")
    assert 0 <= value(after, "betjee_pool_in_use") <= value(after, "betjee_pool_connections")
    assert value(after, "betjee_pool_waiting") == 0
    assert value(after, "betjee_database_up") == 1


def test_metrics_count_stream_subscribers_and_the_events_they_were_sent(server, http, make_market):
    market = make_market()
    token = http.post("/api/v1/rpc/signup", json={"username": f"metricss{time.time_ns() % 10**9}",
                                                  "password": "password123"}).json()["token"]
    deadline = time.monotonic() + 10
    while value(scrape(server), "betjee_database_up") != 1:  # a server just started connects first
        assert time.monotonic() < deadline, "the stream never reached the database"
        time.sleep(0.05)
    before = scrape(server)
    got: list[str] = []
    opened, traded = threading.Event(), threading.Event()

    def listen() -> None:
        # open until an event after the trade (one before it, the new market's, may come first)
        with httpx.stream("GET", server + "/api/v1/stream", timeout=10) as response:
            assert response.status_code == 200
            opened.set()
            for line in response.iter_lines():
                if line.startswith("event: changes") and traded.is_set():
                    got.append(line)
                    return

    thread = threading.Thread(target=listen)
    thread.start()
    assert opened.wait(10)
    deadline = time.monotonic() + 10
    while value(scrape(server), "betjee_stream_subscribers") < value(before, "betjee_stream_subscribers") + 1:
        assert time.monotonic() < deadline, "the open stream was never counted"
        time.sleep(0.05)
    traded.set()
    http.post("/api/v1/rpc/trade", headers={"Authorization": f"Bearer {token}"},
              json={"market": market, "outcome": "YES", "side": "buy", "shares": 1}).raise_for_status()
    thread.join(15)
    assert got, "the stream never carried the trade"
    deadline = time.monotonic() + 10
    while True:
        after = scrape(server)
        if value(after, "betjee_stream_subscribers") == value(before, "betjee_stream_subscribers"):
            break
        assert time.monotonic() < deadline, "the closed stream is still counted"
        time.sleep(0.05)
    assert value(after, "betjee_stream_events_total") >= value(before, "betjee_stream_events_total") + 1


def test_metrics_are_closed_to_addresses_the_setting_does_not_name(db_url):
    proc, base = start_server(db_url, BETJEE_METRICS_ALLOW="10.0.0.0/8")
    try:
        response = httpx.get(base + "/metrics", timeout=10)
        assert response.status_code == 403
        assert response.json()["code"] == "PGRST403"
        assert "betjee_" not in response.text
    finally:
        proc.terminate()
        proc.wait(10)
    # behind a trusted proxy, the client it names is judged, not the proxy
    proc, base = start_server(db_url, BETJEE_TRUSTED_PROXIES="127.0.0.1")
    try:
        public = httpx.get(base + "/metrics", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10)
        assert public.status_code == 403
        assert httpx.get(base + "/metrics", headers={"X-Forwarded-For": "127.0.0.1"}, timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_metrics_say_the_database_is_down_when_it_is(db_url):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = f"postgresql://authenticator@127.0.0.1:{port}/nothing?connect_timeout=1"
    proc, base = start_server(db_url, BETJEE_API_DATABASE_URL=dead)
    try:
        samples = scrape(base)
        assert value(samples, "betjee_database_up") == 0
        assert value(samples, "betjee_pool_in_use") == 0
    finally:
        proc.terminate()
        proc.wait(10)
