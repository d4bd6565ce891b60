"""``hpsearch dashboard``: optuna-dashboard on the same storage the studies live in.

optuna-dashboard has no authentication: whoever reaches its port can read every study and
change trial notes and attributes. It binds to 127.0.0.1 unless told otherwise, and binding
anywhere else is said out loud.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from storage.handle import StorageHandle

__all__ = ["LOCAL_HOSTS", "serve"]

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve(storage: StorageHandle, *, host: str = "127.0.0.1", port: int = 8080,
          emit: Callable[[str], None] = log.info) -> None:
    """Serve until interrupted."""
    import optuna_dashboard

    # The plain RDBStorage: optuna-dashboard checks for it (schema compatibility flags).
    rdb = storage.rdb()
    if host not in LOCAL_HOSTS:
        emit(f"warning: optuna-dashboard has no authentication; anyone who can reach "
             f"{host}:{port} can read and edit these studies. Prefer --host 127.0.0.1 with an "
             f"SSH tunnel (ssh -L {port}:127.0.0.1:{port} this-host).")
    shown = f"[{host}]" if ":" in host else host
    emit(f"optuna-dashboard for {storage.redacted} at http://{shown}:{port}/dashboard "
         "(Ctrl-C stops it)")
    optuna_dashboard.run_server(rdb, host=host, port=port)
