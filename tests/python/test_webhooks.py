"""Issue 13, coming: POST /pusher-local/wait/webhook, with this module's server sending its
webhooks (`--webhook URL`) to a small `http.server` on 127.0.0.1 port 0. A record counts once
one delivery is `delivered`; the request received passes the `pusher` SDK's
`validate_webhook`."""

import http.server
import json
import queue
import threading

import pytest

from support import Server


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.put((self.path, dict(self.headers), body.decode("utf-8")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def receiver():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    httpd.received = queue.Queue()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/pusher/webhook"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def server_args(receiver):
    return ["--webhook", receiver.url]


@pytest.fixture(autouse=True)
def empty_receiver(receiver):
    while not receiver.received.empty():
        receiver.received.get_nowait()


def received(receiver, kind, timeout=5):
    """The first request the receiver got (from now on) carrying a `kind` event."""
    try:
        while True:
            path, headers, body = receiver.received.get(timeout=timeout)
            if any(e["name"] == kind for e in json.loads(body)["events"]):
                return path, headers, body
    except queue.Empty:
        raise AssertionError(f"no {kind} webhook reached the receiver within {timeout} s") from None


def test_wait_webhook_answers_once_the_webhook_is_delivered(server: Server, receiver):
    server.socket().subscribe("hooked-1")
    answer = server.control.ok(server.control.wait("webhook", kind="channel_occupied", channel="hooked-*"))
    record = answer["webhook"]
    assert {"id", "app_id", "time_ms", "events", "body", "headers", "deliveries"} <= set(record), record
    assert record["app_id"] == "1"
    assert record["events"] == [{"name": "channel_occupied", "channel": "hooked-1"}]
    assert [(d["url"], d["state"]) for d in record["deliveries"]] == [(receiver.url, "delivered")]

    path, headers, body = received(receiver, "channel_occupied")
    assert path == "/pusher/webhook"
    assert body == record["body"], "the outbox keeps the exact bytes sent"
    validated = server.sdk.validate_webhook(headers["X-Pusher-Key"], headers["X-Pusher-Signature"], body)
    assert validated is not None, "the SDK accepts the signature and time_ms"
    assert validated["events"] == [{"name": "channel_occupied", "channel": "hooked-1"}]


def test_wait_webhook_filters_by_user_and_since(server: Server, receiver):
    for user in ("ada", "bob"):
        sock = server.socket()
        auth = server.sdk.authenticate("presence-hooks", sock.socket_id, {"user_id": user, "user_info": {}})
        sock.subscribe("presence-hooks", auth)
    bob = server.control.ok(server.control.wait("webhook", kind="member_added", user_id="bob"))["webhook"]
    assert bob["events"][0]["user_id"] == "bob"
    ada = server.control.ok(server.control.wait("webhook", kind="member_added", user_id="ada"))["webhook"]
    assert ada["events"][0]["user_id"] == "ada"
    assert ada["id"] < bob["id"], "ada joined first"
    # Nothing member_added after bob's record.
    later = server.control.wait("webhook", kind="member_added", since=bob["id"], timeout_ms=300)
    assert later.status_code == 408, later.text
    seen = later.json()["seen"]["webhooks"]
    assert {r["id"] for r in seen} >= {ada["id"], bob["id"]}


def test_client_events_are_sent_as_webhooks(server: Server, receiver):
    sender = server.socket()
    sender.subscribe("private-hooks", server.sdk.authenticate("private-hooks", sender.socket_id))
    sender.send("client-ping", {"n": 1}, channel="private-hooks")
    record = server.control.ok(server.control.wait("webhook", kind="client_event", channel="private-hooks"))["webhook"]
    [event] = record["events"]
    assert (event["event"], event["socket_id"]) == ("client-ping", sender.socket_id)
    assert json.loads(event["data"]) == {"n": 1}


def test_metrics_count_webhooks(server: Server, receiver):
    server.socket().subscribe("hooked-metrics")
    server.control.ok(server.control.wait("webhook", kind="channel_occupied", channel="hooked-metrics"))
    text = server.control.get("metrics").text
    samples = [
        line
        for line in text.splitlines()
        if line.startswith("pusher_local_webhooks_total{") and 'app_id="1"' in line
    ]
    assert samples and sum(float(line.rsplit(" ", 1)[1]) for line in samples) >= 1, text
