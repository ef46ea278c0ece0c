"""Issue 13, coming: the event history (GET /pusher-local/events) and the waits on it
(POST /pusher-local/wait/event, /wait/client-event), driven by the official `pusher` SDK's
`trigger` and by client events from a WebSocket."""

import concurrent.futures
import json
import time

# An event record's fields.
RECORD_KEYS = {"seq", "app_id", "channel", "event", "data", "source", "socket_id", "user_id", "time_ms", "delivered"}


def test_a_triggered_event_is_waited_for_by_a_data_subset_and_listed(server):
    subscriber = server.socket()
    subscriber.subscribe("orders")
    before_ms = int(time.time() * 1000)
    assert server.sdk.trigger("orders", "order-paid", {"order": 7, "status": "paid", "lines": [1, 2]}) == {}

    answer = server.control.ok(
        server.control.wait("event", channel="orders", event="order-*", data={"order": 7}, timeout_ms=5000)
    )
    record = answer["event"]
    assert RECORD_KEYS <= set(record), record
    assert (record["app_id"], record["channel"], record["event"], record["source"]) == ("1", "orders", "order-paid", "api")
    # `data` is the string as published; the SDK serialised the dict.
    assert isinstance(record["data"], str)
    assert json.loads(record["data"]) == {"order": 7, "status": "paid", "lines": [1, 2]}
    assert record["socket_id"] is None and record["user_id"] is None
    assert isinstance(record["seq"], int)
    assert before_ms - 1000 <= record["time_ms"] <= int(time.time() * 1000) + 1000
    assert record["delivered"], "one subscriber got it"
    delivered = subscriber.expect("order-paid", "orders")
    assert json.loads(delivered["data"])["order"] == 7

    events = server.control.ok(server.control.get("events"))["events"]
    assert events == [record]


def test_the_history_is_filtered_by_channel_event_source_and_since(server):
    server.sdk.trigger("news-eu", "headline", {"n": 1})
    server.sdk.trigger("news-us", "headline", {"n": 2})
    server.sdk.trigger("sport", "score", {"n": 3})
    everything = server.control.ok(server.control.get("events"))["events"]
    assert [json.loads(e["data"])["n"] for e in everything] == [1, 2, 3], "oldest first"
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3

    news = server.control.ok(server.control.get("events", channel="news-*"))["events"]
    assert [e["channel"] for e in news] == ["news-eu", "news-us"]
    scores = server.control.ok(server.control.get("events", event="sc*"))["events"]
    assert [e["channel"] for e in scores] == ["sport"]
    after_first = server.control.ok(server.control.get("events", since=seqs[0]))["events"]
    assert [e["seq"] for e in after_first] == seqs[1:], "since is exclusive"
    assert server.control.ok(server.control.get("events", source="client"))["events"] == []
    assert len(server.control.ok(server.control.get("events", source="api"))["events"]) == 3
    limited = server.control.ok(server.control.get("events", limit=2))["events"]
    assert len(limited) == 2


def test_wait_event_answers_at_once_from_the_history_and_since_skips_older_ones(server):
    server.sdk.trigger("feed", "item", {"n": 1})
    first = server.control.ok(server.control.wait("event", channel="feed", timeout_ms=5000))["event"]
    # The same wait after that record's seq has nothing to answer with yet.
    started = time.monotonic()
    later = server.control.wait("event", channel="feed", since=first["seq"], timeout_ms=300)
    assert later.status_code == 408, later.text
    assert time.monotonic() - started >= 0.25
    server.sdk.trigger("feed", "item", {"n": 2})
    second = server.control.ok(server.control.wait("event", channel="feed", since=first["seq"], timeout_ms=5000))
    assert json.loads(second["event"]["data"]) == {"n": 2}
    assert second["event"]["seq"] > first["seq"]


def test_wait_event_times_out_with_408_and_what_it_saw(server):
    server.sdk.trigger("chat", "message", {"text": "hi"})
    server.sdk.trigger("chat", "message", {"text": "there"})
    started = time.monotonic()
    response = server.control.wait("event", channel="chat", data={"text": "never"}, timeout_ms=400)
    elapsed = time.monotonic() - started
    assert response.status_code == 408, response.text
    assert 0.35 <= elapsed < 4, f"answered after {elapsed:.2f} s for a 400 ms wait"
    body = response.json()
    assert isinstance(body["error"], str)
    seen = body["seen"]["events"]
    assert [json.loads(e["data"])["text"] for e in seen] == ["hi", "there"]


def test_the_seen_list_holds_the_last_20_records(server):
    for n in range(25):
        server.sdk.trigger("burst", "tick", {"n": n})
    response = server.control.wait("event", event="never", timeout_ms=100)
    assert response.status_code == 408
    seen = response.json()["seen"]["events"]
    assert sorted(json.loads(e["data"])["n"] for e in seen) == list(range(5, 25))


def test_a_wait_in_progress_answers_when_the_event_is_triggered(server):
    # The history answers a wait at once, so the order of the two calls does not matter: the
    # wait started first only shows that a pending wait is woken.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(server.control.wait, "event", channel="late", event="arrived", timeout_ms=5000)
        server.sdk.trigger("late", "arrived", {"ok": True})
        response = pending.result(timeout=10)
    assert server.control.ok(response)["event"]["channel"] == "late"


def test_wait_event_refuses_a_malformed_body(server):
    response = server.control.http.post(
        f"{server.control.base}/wait/event", data=b"[1,", headers={"content-type": "application/json"}, timeout=5
    )
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


def test_client_events_are_recorded_and_waited_for(server):
    sender = server.socket()
    receiver = server.socket()
    for sock in (sender, receiver):
        sock.subscribe("private-chat", server.sdk.authenticate("private-chat", sock.socket_id))
    sender.send("client-typing", {"who": "sender"}, channel="private-chat")
    data = receiver.expect("client-typing", "private-chat")["data"]
    assert (json.loads(data) if isinstance(data, str) else data) == {"who": "sender"}

    answer = server.control.ok(
        server.control.wait("client-event", channel="private-*", event="client-typing", data={"who": "sender"})
    )
    record = answer["event"]
    assert record["source"] == "client"
    assert record["socket_id"] == sender.socket_id
    assert json.loads(record["data"]) == {"who": "sender"}
    # The same event through wait/event with source=client, and not with source=api.
    same = server.control.ok(server.control.wait("event", source="client", event="client-*"))["event"]
    assert same["seq"] == record["seq"]
    assert server.control.wait("event", source="api", event="client-*", timeout_ms=100).status_code == 408
    listed = server.control.ok(server.control.get("events", source="client"))["events"]
    assert [e["seq"] for e in listed] == [record["seq"]]


def test_wait_client_event_ignores_api_events(server):
    server.sdk.trigger("private-chat", "typing", {"who": "api"})
    response = server.control.wait("client-event", event="typing", timeout_ms=200)
    assert response.status_code == 408, response.text
