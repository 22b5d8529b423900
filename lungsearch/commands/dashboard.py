"""`lungsearch dashboard`: optuna-dashboard on the same storage."""

from __future__ import annotations

import argparse
import errno
import os

from lungsearch.commands.common import storage_args

HOST = "127.0.0.1"


class PortError(OSError):
    """The dashboard's port cannot be listened on."""

    user_error = True  # the CLI prints it on one line and exits 2


def register(sub) -> None:
    p = sub.add_parser("dashboard", help="start optuna-dashboard on 127.0.0.1")
    storage_args(p, with_study=False)
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.set_defaults(func=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    import search

    storage = search.open_storage(args.storage, must_exist=True)
    artifacts = search.default_artifact_dir(args.storage)
    store = FileSystemArtifactStore(artifacts) if os.path.isdir(artifacts) else None
    # optuna_dashboard.run_server serves this same app with wsgiref through bottle, which prints its banner
    # before it binds; binding here first lets a taken port be one line, said before anything else
    server = listen(args.port, optuna_dashboard.wsgi(storage, artifact_store=store))
    print(f"optuna-dashboard on http://{HOST}:{server.server_port} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # the way to stop it
        pass
    finally:
        server.server_close()
    return 0


def listen(port: int, app):
    """A wsgiref server bound to ``HOST:port``; :class:`PortError` saying what to do when it cannot bind."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Handler(WSGIRequestHandler):
        def address_string(self):  # no reverse DNS lookup per request
            return self.client_address[0]

    if not 0 <= port <= 65535:
        raise PortError(f"--port {port} is not a port number; pick one from 1024 to 65535 with --port")
    try:
        return make_server(HOST, port, app, handler_class=Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortError(f"port {port} on {HOST} is already in use (another dashboard?); "
                            f"pick another with --port, e.g. --port {port + 1 if port < 65535 else 8081}") from None
        if exc.errno == errno.EACCES:
            raise PortError(f"port {port} needs administrator rights; pick one from 1024 to 65535 with --port") from None
        raise
