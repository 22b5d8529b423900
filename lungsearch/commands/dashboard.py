"""`lungsearch dashboard`: optuna-dashboard on the same storage."""

from __future__ import annotations

import argparse
import os

from lungsearch.commands._common import storage_args


def register(sub) -> None:
    p = sub.add_parser("dashboard", help="start optuna-dashboard on 127.0.0.1")
    storage_args(p, with_study=False)
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    import search

    storage = search.open_storage(args.storage, must_exist=True)
    artifacts = search.default_artifact_dir(args.storage)
    store = FileSystemArtifactStore(artifacts) if os.path.isdir(artifacts) else None
    print(f"optuna-dashboard on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    optuna_dashboard.run_server(storage, host="127.0.0.1", port=args.port, artifact_store=store)
    return 0
