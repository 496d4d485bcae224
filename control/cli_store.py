"""The ``operando`` commands of the run store: ``serve``, ``store sync`` and ``reprocess``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .store import StoreWriter

SERVE_PORT = 8000  # operando serve's default port (Tiled's)
log = logging.getLogger("operando")


def store_summary(store: StoreWriter, out: Path) -> str:
    """What the demo stored, and how to read it back (a two-line tiled.client snippet)."""
    text = f"run store: {len(store.stored)} runs in {out / 'store'} (Tiled)"
    if store.backed_up:
        text += (
            f"; {len(store.backed_up)} missed it and wait in its backup: operando store sync {out}"
        )
    return (
        f"{text}\nserve it with `operando serve {out}`, then in Python:\n"
        "    from tiled.client import from_uri\n"
        f'    runs = from_uri("http://127.0.0.1:{SERVE_PORT}")  '
        "# runs.search(Key('start.lithium_x') > 0.9)"
    )


def add_store_commands(sub: Any) -> None:
    """Add ``serve``, ``store sync`` and ``reprocess`` to ``sub``."""
    s = sub.add_parser(
        "serve",
        help="serve an output folder's runs (Tiled) for tiled.client and the browser",
        description="Serve DIR/store (a Tiled catalog made on first use; the folder's scan "
        "files are registered there, not copied) until Ctrl-C. Reading needs no key; only "
        "the control session, which holds the API key, writes. Listens on 127.0.0.1 unless "
        "--host says otherwise.",
    )
    s.add_argument("dir", type=Path, metavar="DIR", help="an output folder (operando demo --out)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument(
        "--port", type=int, default=SERVE_PORT, help=f"port (default {SERVE_PORT}; 0: any free)"
    )
    s.set_defaults(func=_serve)
    st = sub.add_parser("store", help="the run store: sync")
    ss = st.add_subparsers(dest="store_command", required=True)
    sy = ss.add_parser(
        "sync",
        help="upload what the run store missed (from the spool and TiledWriter's backup)",
        description="Make the run store hold every run of DIR whole: runs it missed or holds "
        "in part are written from DIR/documents (or TiledWriter's backup in DIR/store/backup), "
        "and scan files are registered with their runs. The store is the config's [store] "
        "uri, or DIR's embedded one (started for the sync if it is not running).",
    )
    sy.add_argument("dir", type=Path, metavar="DIR", help="an output folder")
    sy.add_argument("--config", type=Path, help="beamline config (TOML) with a [store] section")
    sy.set_defaults(func=_store_sync)


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder (give an output folder, e.g. demo_out)")


def _serve(args: argparse.Namespace) -> int:
    from .cli import stop_on_terminate
    from .store_server import LOOPBACK, serve

    _check_folder(args.dir)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be within [0, 65535]")
    if args.host != LOOPBACK:
        log.warning("operando serve: listening on %s: other machines can read the runs", args.host)
    stop_on_terminate()
    try:
        serve(args.dir, args.host, args.port, ready=_announce_served)
    except KeyboardInterrupt:
        pass
    return 0


def _announce_served(url: str) -> None:
    print(url, flush=True)
    print(
        f'from tiled.client import from_uri; runs = from_uri("{url}")',
        file=sys.stderr,
        flush=True,
    )


def _store_sync(args: argparse.Namespace) -> int:
    from .config import load_config
    from .store import StoreError
    from .store_server import StoreSession
    from .store_sync import sync

    _check_folder(args.dir)
    cfg = load_config(args.config) if args.config else None
    uri, key = (cfg.store.uri, cfg.store.api_key) if cfg is not None else ("", "")
    if cfg is not None and cfg.store.off:
        raise ConfigError(f'{args.config}: [store] uri = "off": there is no store to sync to')
    session = StoreSession(args.dir, uri, key)
    try:
        client = session.open()
        result = sync(args.dir, client)
    except StoreError as exc:
        raise ConfigError(str(exc)) from exc
    finally:
        session.close()
    total = sum(result.documents.values())
    print(
        f"run store {session.uri}: {len(result.documents)} runs, {total} documents; "
        f"{len(result.uploaded)} uploaded now, {len(result.complete)} were complete, "
        f"{len(result.registered)} files registered"
    )
    return 0
