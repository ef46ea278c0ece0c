"""pytest fixtures: one pusher-local per test module, reset before every test.

    PUSHER_LOCAL_BIN=target/debug/pusher-local target/ci-python/bin/python -m pytest tests/python

`server` starts the binary (PUSHER_LOCAL_BIN) with `--port 0 --ready-file ... --no-config -q` in a
temporary working directory, waits (at most 10 s) for the ready file and yields a `Server`: the
ready file's JSON as `.ready` (url, ws_url, http_port, ws_port, host, app_id, key, secret, pid),
the control API as `.control`, the official `pusher` SDK as `.sdk`. After the module it is
stopped with SIGTERM and must exit within 5 s. A module that needs other flags overrides the
`server_args` fixture. A failing test's report carries the server's output.
"""

import pytest

from support import PusherLocal, Server, binary, until


def pytest_configure(config):
    try:
        binary()
    except RuntimeError as e:
        raise pytest.UsageError(str(e)) from e


@pytest.fixture(scope="module")
def server_args():
    """Extra command-line flags for this module's server."""
    return []


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_args):
    process = PusherLocal(tmp_path_factory.mktemp("pusher-local"), extra_args=server_args).start()
    try:
        process.wait_ready()
        yield Server(process)
    finally:
        code = process.stop()
    assert code == 0, f"pusher-local exited with {code} after SIGTERM\n{process.log()}"
    assert not process.ready_file.exists(), "the ready file is removed at shutdown"


@pytest.fixture(autouse=True)
def clean(server):
    """Every test starts with no sockets, history, faults or webhooks."""
    answer = server.control.ok(server.control.post("reset"))
    assert "closed" in answer, answer

    # The reset (or the last test's own close) asks sockets to close; the server forgets them
    # just after. Wait until they are gone where the server lists them (issue 13's endpoint).
    def gone():
        response = server.control.get("connections")
        return response.status_code != 200 or response.json()["connections"] == []

    until(gone, "closed sockets to leave GET /pusher-local/connections")
    yield
    server.close_sockets()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    server = item.funcargs.get("server") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(server, Server):
        report.sections.append(("pusher-local output", server.process.log()))
