"""Issue 13, coming: `--history N` keeps the last N events per app (default 1000, 0 = off)."""

import json

import pytest


@pytest.fixture(scope="module")
def server_args():
    return ["--history", "2"]


def test_history_keeps_the_last_n_events(server):
    for n in range(3):
        server.sdk.trigger("kept", "tick", {"n": n})
    events = server.control.ok(server.control.get("events"))["events"]
    assert [json.loads(e["data"])["n"] for e in events] == [1, 2]
