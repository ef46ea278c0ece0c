"""Helpers for the Python suite: start the pusher-local binary, call its control API, and a
minimal Pusher-protocol WebSocket client (websocket-client) to subscribe, sign in and see
sockets closed.

Every wait here is bounded; none of them sleeps to let something happen. The only polling is
for the ready file, which has no other signal.
"""

import json
import os
import signal
import struct
import subprocess
import time
from pathlib import Path

import pusher
import requests
import websocket

READY_TIMEOUT_S = 10
STOP_TIMEOUT_S = 5
# Bound for one frame, or one control call beyond its own `timeout_ms`.
FRAME_TIMEOUT_S = 5


def binary():
    """The binary under test: PUSHER_LOCAL_BIN (required)."""
    path = os.environ.get("PUSHER_LOCAL_BIN")
    if not path:
        raise RuntimeError("set PUSHER_LOCAL_BIN to the pusher-local binary (e.g. target/debug/pusher-local)")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"PUSHER_LOCAL_BIN={path} is not an executable file")
    return os.path.abspath(path)


class PusherLocal:
    """One pusher-local process on a free port, in its own working directory."""

    def __init__(self, workdir, extra_args=(), no_config=True):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ready_file = self.workdir / "ready.json"
        self.log_file = self.workdir / "pusher-local.log"
        args = [binary(), "--port", "0", "--ready-file", str(self.ready_file), "-q"]
        if no_config:
            args.append("--no-config")
        # Keep the local CA out of the user's data folder.
        args += ["--tls-dir", str(self.workdir / "tls"), *extra_args]
        self.args = args
        self.proc = None
        self.ready = None

    def start(self):
        """Starts the process; `wait_ready()` waits for it."""
        self.ready_file.unlink(missing_ok=True)  # never a stale one
        # No PUSHER_* variable of the developer's may change what the binary serves.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHER_") and k != "NO_COLOR"}
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        return self

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        """The ready file's JSON, once it is there (written atomically), within `timeout` s."""
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"pusher-local exited with {self.proc.returncode} before it was ready\n{self.log()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"no {self.ready_file} within {timeout} s\n{self.log()}")
            time.sleep(0.02)
        self.ready = json.loads(self.ready_file.read_text())
        return self.ready

    def stop(self):
        """SIGTERM; returns the exit code. Fails (after a SIGKILL) when it takes over 5 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"pusher-local did not exit within {STOP_TIMEOUT_S} s of SIGTERM\n{self.log()}")
        return self.proc.returncode

    def log(self):
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            text = ""
        return f"--- pusher-local output ---\n{text or '(empty)'}\n--- end ---"


class Control:
    """The control API under /pusher-local/, JSON in and out."""

    def __init__(self, url):
        self.base = f"{url}/pusher-local"
        self.http = requests.Session()

    def get(self, path, **params):
        return self.http.get(f"{self.base}/{path}", params=params, timeout=FRAME_TIMEOUT_S)

    def post(self, path, body=None):
        """POSTs `body` as JSON (an empty object when None)."""
        return self.http.post(f"{self.base}/{path}", json={} if body is None else body, timeout=FRAME_TIMEOUT_S)

    def delete(self, path):
        return self.http.delete(f"{self.base}/{path}", timeout=FRAME_TIMEOUT_S)

    def wait(self, what, **body):
        """POST /pusher-local/wait/{what}; the HTTP timeout is the wait's own plus a margin."""
        timeout = body.get("timeout_ms", 5000) / 1000 + FRAME_TIMEOUT_S
        return self.http.post(f"{self.base}/wait/{what}", json=body, timeout=timeout)

    def ok(self, response, status=200):
        """The JSON of `response`, which must have `status`."""
        assert response.status_code == status, (
            f"{response.request.method} {response.url}: expected {status}, got {response.status_code}: {response.text}"
        )
        return response.json()


def until(condition, what, timeout=FRAME_TIMEOUT_S):
    """Polls `condition()` (every 20 ms, at most `timeout` s) until it returns something truthy,
    and returns that. For state the server changes after answering, like a closed socket leaving
    the connection list, which has no event to wait on."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {value!r}")
        time.sleep(0.02)


def sdk(ready, **overrides):
    """The official `pusher` Python SDK pointed at the server."""
    options = dict(
        app_id=ready["app_id"],
        key=ready["key"],
        secret=ready["secret"],
        ssl=False,
        host=ready["host"],
        port=ready["http_port"],
    )
    options.update(overrides)
    return pusher.Pusher(**options)


class Closed(Exception):
    """The server closed the WebSocket: `code` and `reason`."""

    def __init__(self, code, reason):
        super().__init__(f"closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


class Socket:
    """A Pusher protocol 7 client on one WebSocket: frames in and out as dicts."""

    def __init__(self, ready, expect_established=True):
        url = f"{ready['ws_url']}/app/{ready['key']}?protocol=7&client=pusher-local-pytest&version=1.0"
        self.ws = websocket.create_connection(url, timeout=FRAME_TIMEOUT_S)
        self.frames = []
        self.socket_id = None
        if expect_established:
            established = self.expect("pusher:connection_established")
            self.socket_id = json.loads(established["data"])["socket_id"]

    def send(self, event, data, channel=None):
        frame = {"event": event, "data": data}
        if channel is not None:
            frame["channel"] = channel
        self.ws.send(json.dumps(frame))

    def recv(self, deadline):
        """The next frame (a dict), or Closed; times out at `deadline` (time.monotonic())."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame in time")
            self.ws.settimeout(left)
            try:
                opcode, frame = self.ws.recv_data_frame(control_frame=False)
            except websocket.WebSocketTimeoutException as e:
                raise TimeoutError("no frame in time") from e
            except (websocket.WebSocketConnectionClosedException, OSError) as e:
                raise Closed(None, f"connection lost without a close frame: {e}") from e
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data or b""
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                raise Closed(code, data[2:].decode("utf-8", "replace"))
            if opcode == websocket.ABNF.OPCODE_TEXT:
                parsed = json.loads(frame.data)
                self.frames.append(parsed)
                return parsed

    def expect(self, event, channel=None, timeout=FRAME_TIMEOUT_S):
        """The first frame (from now on) named `event` (on `channel` when given)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                frame = self.recv(deadline)
            except TimeoutError as e:
                raise AssertionError(f"no {event} frame within {timeout} s; frames seen: {seen}") from e
            if frame.get("event") == event and (channel is None or frame.get("channel") == channel):
                return frame
            seen.append(frame)

    def closed(self, timeout=FRAME_TIMEOUT_S):
        """Reads until the server closes the socket; returns the Closed (code, reason) and the
        frames read before it."""
        deadline = time.monotonic() + timeout
        before = []
        while True:
            try:
                before.append(self.recv(deadline))
            except Closed as closed:
                return closed, before
            except TimeoutError as e:
                raise AssertionError(f"the socket was not closed within {timeout} s; frames: {before}") from e

    def subscribe(self, channel, auth=None):
        """Subscribes (auth: what the SDK's `authenticate` returned) and waits for success."""
        data = {"channel": channel}
        if auth:
            data["auth"] = auth["auth"]
            if "channel_data" in auth:
                data["channel_data"] = auth["channel_data"]
        self.send("pusher:subscribe", data)
        return self.expect("pusher_internal:subscription_succeeded", channel)

    def signin(self, auth):
        """pusher:signin with what the SDK's `authenticate_user` returned; waits for success."""
        self.send("pusher:signin", {"auth": auth["auth"], "user_data": auth["user_data"]})
        return self.expect("pusher:signin_success")

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


class Server:
    """A started PusherLocal with its ready info, control API, SDK, and the sockets a test opened."""

    def __init__(self, process):
        self.process = process
        self.ready = process.ready
        self.control = Control(self.ready["url"])
        self.sdk = sdk(self.ready)
        self.sockets = []

    def socket(self, **kwargs):
        """A connected protocol-7 WebSocket client, closed after the test."""
        sock = Socket(self.ready, **kwargs)
        self.sockets.append(sock)
        return sock

    def close_sockets(self):
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
