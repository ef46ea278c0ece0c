"""The control API that is on main: health, the ready file, reset, disconnect, openapi.json, and
two servers side by side on --port 0. The last tests cover what issue 13 adds to these
(GET /pusher-local/apps; reset clearing history and faults)."""

import json

from support import PusherLocal, Server


def test_health_answers_serving(server):
    response = server.control.get("health")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "serving"}


def test_the_ready_file_describes_the_server(server):
    ready = server.ready
    port = ready["http_port"]
    assert isinstance(port, int) and port > 0
    assert ready["ws_port"] == port, "one listener serves both"
    assert ready["host"] == "127.0.0.1"
    assert ready["url"] == f"http://127.0.0.1:{port}"
    assert ready["ws_url"] == f"ws://127.0.0.1:{port}"
    assert (ready["app_id"], ready["key"], ready["secret"]) == ("1", "app-key", "app-secret")
    assert ready["pid"] == server.process.proc.pid


def test_reset_closes_sockets_with_the_code_and_forgets_cached_events(server):
    sock = server.socket()
    server.sdk.trigger("cache-prices", "tick", {"price": 1})
    answer = server.control.ok(server.control.post("reset", {"code": 4100}))
    assert answer["closed"] == 1
    assert answer["cache_cleared"] == 1, "the cache channel's last event"
    assert answer["webhooks_cleared"] is True
    assert answer["replays_stopped"] == 0
    closed, _ = sock.closed()
    assert closed.code == 4100


def test_reset_refuses_an_unknown_app_and_a_malformed_body(server):
    unknown = server.control.post("reset", {"app_id": "no-such-app"})
    assert unknown.status_code == 404
    assert "error" in unknown.json()
    malformed = server.control.http.post(
        f"{server.control.base}/reset", data=b"{not json", headers={"content-type": "application/json"}, timeout=5
    )
    assert malformed.status_code == 400
    assert "error" in malformed.json()
    # A body that is not JSON is refused before it is read (a web page could send text/plain).
    plain = server.control.http.post(
        f"{server.control.base}/reset", data=b"{}", headers={"content-type": "text/plain"}, timeout=5
    )
    assert plain.status_code == 415


def test_disconnect_closes_one_socket_with_the_chosen_code_and_reason(server):
    target = server.socket()
    bystander = server.socket()
    answer = server.control.ok(
        server.control.post("disconnect", {"socket_id": target.socket_id, "code": 4100, "reason": "go away"})
    )
    assert answer == {"closed": 1}
    closed, _ = target.closed()
    assert (closed.code, closed.reason) == (4100, "go away")
    bystander.send("pusher:ping", {})
    bystander.expect("pusher:pong")


def test_disconnect_by_user_closes_the_signed_in_socket(server):
    ada = server.socket()
    ada.signin(server.sdk.authenticate_user(ada.socket_id, {"id": "ada", "user_info": {"name": "Ada"}}))
    anonymous = server.socket()
    answer = server.control.ok(server.control.post("disconnect", {"user_id": "ada", "code": 4009}))
    assert answer == {"closed": 1}
    closed, _ = ada.closed()
    assert closed.code == 4009
    anonymous.send("pusher:ping", {})
    anonymous.expect("pusher:pong")


def test_disconnect_by_channel_closes_its_subscribers(server):
    inside = server.socket()
    inside.subscribe("room-1")
    outside = server.socket()
    outside.subscribe("room-2")
    assert server.control.ok(server.control.post("disconnect", {"channel": "room-1"})) == {"closed": 1}
    closed, _ = inside.closed()
    assert closed.code == 4200, "the default code"
    outside.send("pusher:ping", {})
    outside.expect("pusher:pong")


def test_disconnect_refuses_bad_requests(server):
    several = server.control.post("disconnect", {"socket_id": "1.2", "user_id": "ada"})
    assert several.status_code == 400
    not_a_socket = server.control.post("disconnect", {"socket_id": "abc"})
    assert not_a_socket.status_code == 400
    bad_code = server.control.post("disconnect", {"code": 3000})
    assert bad_code.status_code == 400
    unknown_app = server.control.post("disconnect", {"app_id": "no-such-app"})
    assert unknown_app.status_code == 404
    for response in (several, not_a_socket, bad_code, unknown_app):
        assert isinstance(response.json()["error"], str)


def test_openapi_lists_the_control_endpoints(server):
    document = server.control.ok(server.control.get("openapi.json"))
    assert document["openapi"].startswith("3.")
    for path in ["/pusher-local/health", "/pusher-local/reset", "/pusher-local/disconnect"]:
        assert path in document["paths"], path


def test_two_servers_on_port_0_get_their_own_ports_and_both_serve(tmp_path):
    servers = [PusherLocal(tmp_path / name).start() for name in ("a", "b")]
    try:
        readies = [s.wait_ready() for s in servers]
        ports = {ready["http_port"] for ready in readies}
        assert len(ports) == 2, f"two different ports: {readies}"
        for process in servers:
            each = Server(process)
            assert each.control.ok(each.control.get("health")) == {"status": "serving"}
            assert each.sdk.trigger("my-channel", "my-event", {"port": process.ready["http_port"]}) == {}
    finally:
        codes = [s.stop() for s in servers]
    assert codes == [0, 0]
    assert not any(s.ready_file.exists() for s in servers), "each removes its ready file"


# ---- issue 13, coming: GET /pusher-local/apps, and what reset clears besides ----


def test_apps_lists_the_default_app_with_its_counts(server):
    sock = server.socket()
    sock.subscribe("room-1")
    apps = server.control.ok(server.control.get("apps"))["apps"]
    assert len(apps) == 1
    app = apps[0]
    assert (app["id"], app["key"], app["secret"]) == (server.ready["app_id"], server.ready["key"], server.ready["secret"])
    assert app["connections"] == 1
    assert app["channels"] == 1
    assert app["client_events"] is True
    assert app["user_authentication"] is True
    assert app["tls_only"] is False


def test_reset_also_clears_the_history_and_the_faults(server):
    server.sdk.trigger("news", "headline", {"n": 1})
    server.control.ok(server.control.post("faults", {"kind": "latency", "channel": "*", "ms": 10}), 201)
    answer = server.control.ok(server.control.post("reset"))
    assert "history_cleared" in answer and "faults_cleared" in answer, answer
    assert server.control.ok(server.control.get("events"))["events"] == []
    assert server.control.ok(server.control.get("faults"))["faults"] == []


def test_openapi_lists_the_issue_13_endpoints(server):
    paths = server.control.ok(server.control.get("openapi.json"))["paths"]
    for path in [
        "/pusher-local/apps",
        "/pusher-local/connections",
        "/pusher-local/channels",
        "/pusher-local/events",
        "/pusher-local/wait/subscribers",
        "/pusher-local/wait/member",
        "/pusher-local/wait/event",
        "/pusher-local/wait/client-event",
        "/pusher-local/wait/webhook",
        "/pusher-local/faults",
        "/pusher-local/faults/{id}",
        "/pusher-local/metrics",
    ]:
        assert path in paths, f"{path} is missing from openapi.json"


def test_unknown_app_ids_are_404_on_the_new_endpoints(server):
    for response in [
        server.control.get("connections", app_id="no-such-app"),
        server.control.get("channels", app_id="no-such-app"),
        server.control.get("events", app_id="no-such-app"),
        server.control.wait("event", app_id="no-such-app", timeout_ms=100),
        server.control.wait("subscribers", app_id="no-such-app", channel="x", timeout_ms=100),
    ]:
        assert response.status_code == 404, f"{response.url}: {response.status_code} {response.text}"
        assert isinstance(json.loads(response.text)["error"], str)
