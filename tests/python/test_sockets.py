"""Issue 13, coming: what the sockets are doing. GET /pusher-local/connections and /channels,
POST /pusher-local/wait/subscribers and /wait/member, with WebSocket clients that subscribe to
public, cache and presence channels (the presence auth and signin from the `pusher` SDK's
`authenticate` and `authenticate_user`)."""

import time

from support import until

CONNECTION_KEYS = {
    "socket_id",
    "app_id",
    "transport",
    "remote_addr",
    "user_agent",
    "user_id",
    "channels",
    "connected_at_ms",
    "age_ms",
    "frames_in",
    "frames_out",
}


def join_presence(server, channel, user_id, info):
    sock = server.socket()
    auth = server.sdk.authenticate(channel, sock.socket_id, {"user_id": user_id, "user_info": info})
    sock.subscribe(channel, auth)
    return sock


def test_wait_subscribers_then_channels_connections_and_a_disconnect(server):
    sock = server.socket()
    sock.subscribe("room-1")
    sock.subscribe("a-room")

    answer = server.control.ok(server.control.wait("subscribers", channel="room-1", timeout_ms=5000))
    assert answer == {"channel": "room-1", "subscription_count": 1}

    channels = server.control.ok(server.control.get("channels"))["channels"]
    room = next(c for c in channels if c["name"] == "room-1")
    assert room["app_id"] == "1"
    assert room["type"] == "public"
    assert room["cache"] is False
    assert room["subscription_count"] == 1
    assert not room.get("members"), "members are listed for presence channels only"
    assert {c["name"] for c in channels} == {"room-1", "a-room"}

    connections = server.control.ok(server.control.get("connections", channel="room-1"))["connections"]
    assert len(connections) == 1
    conn = connections[0]
    assert CONNECTION_KEYS <= set(conn), conn
    assert conn["socket_id"] == sock.socket_id
    assert conn["app_id"] == "1"
    assert conn["transport"] == "ws"
    assert conn["remote_addr"].startswith("127.0.0.1:")
    assert conn["user_id"] is None, "not signed in"
    assert conn["channels"] == ["a-room", "room-1"], "sorted"
    now_ms = time.time() * 1000
    assert now_ms - 60_000 < conn["connected_at_ms"] <= now_ms + 1000
    assert conn["age_ms"] >= 0
    assert conn["frames_in"] >= 2, "two subscribes"
    assert conn["frames_out"] >= 3, "connection_established and two subscription_succeeded"

    closed = server.control.ok(server.control.post("disconnect", {"socket_id": sock.socket_id, "code": 4201}))
    assert closed == {"closed": 1}
    code = sock.closed()[0].code
    assert code == 4201
    until(
        lambda: server.control.ok(server.control.get("connections"))["connections"] == [],
        "the closed socket to leave the list",
    )


def test_wait_subscribers_times_out_with_the_count_it_saw(server):
    server.socket().subscribe("half-full")
    started = time.monotonic()
    response = server.control.wait("subscribers", channel="half-full", count=2, timeout_ms=300)
    assert response.status_code == 408, response.text
    assert time.monotonic() - started >= 0.25
    body = response.json()
    assert isinstance(body["error"], str)
    assert body["seen"] == {"subscription_count": 1}
    # The second subscriber fulfils the same wait.
    server.socket().subscribe("half-full")
    answer = server.control.ok(server.control.wait("subscribers", channel="half-full", count=2))
    assert answer["subscription_count"] == 2


def test_connections_and_channels_are_filtered(server):
    signed = server.socket()
    signed.signin(server.sdk.authenticate_user(signed.socket_id, {"id": "ada", "user_info": {"name": "Ada"}}))
    signed.subscribe("news-eu")
    other = server.socket()
    other.subscribe("sport")
    other.subscribe("cache-prices")

    by_user = server.control.ok(server.control.get("connections", user_id="ada"))["connections"]
    assert [(c["socket_id"], c["user_id"]) for c in by_user] == [(signed.socket_id, "ada")]
    by_channel = server.control.ok(server.control.get("connections", channel="sport"))["connections"]
    assert [c["socket_id"] for c in by_channel] == [other.socket_id]
    assert len(server.control.ok(server.control.get("connections", app_id="1"))["connections"]) == 2

    news = server.control.ok(server.control.get("channels", prefix="news-"))["channels"]
    assert [c["name"] for c in news] == ["news-eu"]
    cache = server.control.ok(server.control.get("channels", prefix="cache-"))["channels"]
    assert [(c["name"], c["type"], c["cache"]) for c in cache] == [("cache-prices", "public", True)]


def test_presence_members_are_waited_for_and_listed(server):
    alice = join_presence(server, "presence-room", "alice", {"name": "Alice"})
    answer = server.control.ok(server.control.wait("member", channel="presence-room", user_id="alice"))
    assert answer["channel"] == "presence-room"
    assert answer["user_id"] == "alice"
    assert answer["present"] is True
    assert answer["members"] == ["alice"]

    join_presence(server, "presence-room", "bob", {"name": "Bob"})
    answer = server.control.ok(server.control.wait("member", channel="presence-room", user_id="bob"))
    assert sorted(answer["members"]) == ["alice", "bob"]

    [room] = server.control.ok(server.control.get("channels", prefix="presence-"))["channels"]
    assert room["name"] == "presence-room"
    assert room["type"] == "presence"
    assert room["subscription_count"] == 2
    assert room["user_count"] == 2
    members = sorted(room["members"], key=lambda m: m["user_id"])
    assert members == [
        {"user_id": "alice", "user_info": {"name": "Alice"}},
        {"user_id": "bob", "user_info": {"name": "Bob"}},
    ]

    alice.close()
    gone = server.control.ok(
        server.control.wait("member", channel="presence-room", user_id="alice", present=False, timeout_ms=5000)
    )
    assert gone["present"] is False
    assert gone["members"] == ["bob"]


def test_wait_member_times_out_with_the_members_it_saw(server):
    join_presence(server, "presence-lobby", "carol", {})
    response = server.control.wait("member", channel="presence-lobby", user_id="dave", timeout_ms=300)
    assert response.status_code == 408, response.text
    body = response.json()
    assert isinstance(body["error"], str)
    assert body["seen"] == {"members": ["carol"]}


def test_private_channels_are_typed(server):
    sock = server.socket()
    sock.subscribe("private-notes", server.sdk.authenticate("private-notes", sock.socket_id))
    [notes] = server.control.ok(server.control.get("channels", prefix="private-"))["channels"]
    assert (notes["name"], notes["type"], notes["cache"], notes["subscription_count"]) == (
        "private-notes",
        "private",
        False,
        1,
    )


def test_wait_webhook_with_no_url_answers_from_the_outbox(server):
    # This module's server has no webhook URL: records are only kept, and count as sent.
    server.socket().subscribe("kept-hooks")
    record = server.control.ok(server.control.wait("webhook", kind="channel_occupied", channel="kept-*"))["webhook"]
    assert record["events"] == [{"name": "channel_occupied", "channel": "kept-hooks"}]
    assert record["deliveries"] == []
    response = server.control.wait("webhook", kind="channel_occupied", since=record["id"], timeout_ms=200)
    assert response.status_code == 408, response.text
    assert record["id"] in [r["id"] for r in response.json()["seen"]["webhooks"]]
