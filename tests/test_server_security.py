"""The dashboard server as deployed by .streamlit/config.toml: loopback only, and its websocket
refuses foreign Host headers (DNS rebinding). A real `streamlit run` on a free port."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _upgrade_status(port: int, host: str) -> int:
    """Status code of a websocket upgrade to the app's stream with this Host header."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Protocol: streamlit\r\nOrigin: http://{host}\r\n\r\n").encode())
        return int(s.recv(200).decode(errors="replace").split()[1])


def test_config_binds_loopback_with_xsrf_and_a_host_allow_list():
    server = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]
    assert server["address"] == "127.0.0.1"
    assert server["enableXsrfProtection"] is True
    assert "*" not in server["allowedHosts"] and "localhost" in server["allowedHosts"]


@pytest.mark.slow
def test_websocket_refuses_a_foreign_host_header(tmp_path):
    port = _free_port()
    env = {**os.environ, "ROASTCORE_RUNS": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status = _upgrade_status(port, f"localhost:{port}")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("streamlit did not start")
                time.sleep(0.5)
        assert status == 101
        assert _upgrade_status(port, f"127.0.0.1:{port}") == 101
        assert _upgrade_status(port, "rebind.attacker.example") == 403
        assert _upgrade_status(port, f"rebind.attacker.example:{port}") == 403
    finally:
        proc.terminate()
        proc.wait(timeout=20)
