"""Issue 13, coming: faults (/pusher-local/faults) as the official `pusher` SDK sees them, and
the Prometheus metrics (GET /pusher-local/metrics)."""

import json
import re

import pusher.errors
import pytest


def add_fault(server, **fault):
    return server.control.ok(server.control.post("faults", fault), 201)["fault"]


def test_http_status_fails_the_next_call_then_the_api_recovers(server):
    fault = add_fault(server, kind="http_status", status=503, count=1)
    assert fault["kind"] == "http_status"
    assert fault["status"] == 503
    assert isinstance(fault["id"], (int, str))
    with pytest.raises(pusher.errors.PusherBadStatus, match="503"):
        server.sdk.trigger("orders", "order-paid", {"order": 1})
    assert server.sdk.trigger("orders", "order-paid", {"order": 2}) == {}
    events = server.control.ok(server.control.get("events", channel="orders"))["events"]
    assert [e["data"] for e in events] == ['{"order": 2}'], "the refused call published nothing"


def test_http_status_with_a_count_fails_that_many_calls(server):
    add_fault(server, kind="http_status", status=429, count=2)
    for _ in range(2):
        with pytest.raises(pusher.errors.PusherBadStatus, match="429"):
            server.sdk.trigger("c", "e", {})
    assert server.sdk.trigger("c", "e", {}) == {}


def test_clock_skew_makes_fresh_sdk_requests_expire(server):
    fault = add_fault(server, kind="clock_skew", seconds=-700)
    with pytest.raises(pusher.errors.PusherBadAuth):
        server.sdk.trigger("orders", "order-paid", {"order": 1})
    assert server.control.delete(f"faults/{fault['id']}").status_code == 200
    assert server.sdk.trigger("orders", "order-paid", {"order": 1}) == {}


def test_faults_are_listed_deleted_and_cleared_by_reset(server):
    forever = add_fault(server, kind="latency", channel="slow-*", ms=100)
    timed = add_fault(server, kind="drop", channel="lossy-*", fraction=0.5, duration_ms=60_000)
    faults = server.control.ok(server.control.get("faults"))["faults"]
    by_id = {f["id"]: f for f in faults}
    assert set(by_id) == {forever["id"], timed["id"]}
    assert by_id[forever["id"]]["kind"] == "latency"
    assert by_id[forever["id"]]["ms"] == 100
    assert by_id[forever["id"]]["channel"] == "slow-*"
    assert by_id[forever["id"]]["expires_in_ms"] is None, "until cleared"
    assert by_id[timed["id"]]["kind"] == "drop"
    assert 0 < by_id[timed["id"]]["expires_in_ms"] <= 60_000

    assert server.control.delete(f"faults/{timed['id']}").status_code == 200
    assert server.control.delete(f"faults/{timed['id']}").status_code == 404
    assert [f["id"] for f in server.control.ok(server.control.get("faults"))["faults"]] == [forever["id"]]

    server.control.ok(server.control.post("reset"))
    assert server.control.ok(server.control.get("faults"))["faults"] == []

    add_fault(server, kind="latency", ms=5)
    add_fault(server, kind="latency", ms=6)
    assert server.control.ok(server.control.delete("faults")) == {"cleared": 2}
    assert server.control.ok(server.control.get("faults"))["faults"] == []


def test_bad_faults_are_refused(server):
    for fault in [
        {"kind": "no-such-kind"},
        {"kind": "refuse_connections", "code": 4200},  # 4000-4099 only
        {"kind": "node_down"},  # Redis mode only
        {"kind": "drop", "fraction": 1.5},
    ]:
        response = server.control.post("faults", fault)
        assert response.status_code == 400, f"{fault}: {response.status_code} {response.text}"
        assert isinstance(response.json()["error"], str)
    assert server.control.post("faults", {"kind": "latency", "ms": 1, "app_id": "no-such-app"}).status_code == 404


def test_drop_loses_deliveries_on_matching_channels_only(server):
    sock = server.socket()
    sock.subscribe("lossy-feed")
    sock.subscribe("steady-feed")
    add_fault(server, kind="drop", channel="lossy-*", fraction=1)
    server.sdk.trigger("lossy-feed", "tick", {"n": 1})
    server.sdk.trigger("steady-feed", "tick", {"n": 2})
    # Deliveries to one socket keep their order: the steady event arriving first means the
    # lossy one was dropped, not late.
    frame = sock.expect("tick")
    assert frame["channel"] == "steady-feed"
    assert not [f for f in sock.frames if f.get("channel") == "lossy-feed" and f.get("event") == "tick"]


def test_refuse_connections_sends_the_error_code_and_closes(server):
    add_fault(server, kind="refuse_connections", code=4004)
    sock = server.socket(expect_established=False)
    closed, frames = sock.closed()
    assert [f["event"] for f in frames] == ["pusher:error"]
    data = frames[0]["data"]
    assert (json.loads(data) if isinstance(data, str) else data)["code"] == 4004
    assert closed.code == 4004
    server.control.ok(server.control.delete("faults"))
    assert server.socket().socket_id, "connections are accepted again"


def metric(text, name, **labels):
    """The value of the sample `name{labels}` (labels in any order), or None."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?", line.strip())
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def test_metrics_count_api_calls_connections_and_published_events(server):
    sock = server.socket()
    sock.subscribe("metered")
    server.sdk.trigger("metered", "tick", {})
    sock.expect("tick", "metered")
    response = server.control.get("metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE pusher_local_api_calls_total counter" in text
    assert metric(text, "pusher_local_api_calls_total", app_id="1", status="200") >= 1
    assert metric(text, "pusher_local_events_published_total", app_id="1", source="api") >= 1
    assert metric(text, "pusher_local_connections", app_id="1") == 1
    assert metric(text, "pusher_local_channels", app_id="1") == 1
    assert metric(text, "pusher_local_messages_in_total", app_id="1") >= 1
    assert metric(text, "pusher_local_messages_out_total", app_id="1") >= 1
