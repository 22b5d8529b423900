"""`lungsearch dashboard` serves optuna-dashboard's app on 127.0.0.1."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import optuna
import optuna_dashboard

from lungsearch.commands.dashboard import listen


def test_the_dashboard_answers_on_its_port(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=url, study_name="shown")
    server = listen(0, optuna_dashboard.wsgi(url))  # port 0: any free one
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/api/studies", timeout=30) as reply:
            assert reply.status == 200 and b"shown" in reply.read()
    finally:
        server.shutdown()
        server.server_close()
