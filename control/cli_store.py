"""The ``operando`` commands of the run store: ``serve``, ``store sync`` and ``reprocess``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .store_process import StoreLink

SERVE_PORT = 8000  # operando serve's default port (Tiled's)
log = logging.getLogger("operando")


def store_summary(store: StoreLink, out: Path) -> str:
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
    add_reprocess_command(sub)


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
    except Exception as exc:  # the server refused a write (a wrong key) or went away
        raise ConfigError(
            f"run store {session.uri}: {type(exc).__name__}: {str(exc).splitlines()[0]} "
            "(check [store] uri and api_key); what was uploaded stays, run the sync again"
        ) from exc
    finally:
        session.close()
    total = sum(result.documents.values())
    print(
        f"run store {session.uri}: {len(result.documents)} runs, {total} documents; "
        f"{len(result.uploaded)} uploaded now, {len(result.complete)} were complete, "
        f"{len(result.registered)} files registered"
        + (f", {len(result.unreadable)} the server cannot read" if result.unreadable else "")
    )
    return 0


def add_reprocess_command(sub: Any) -> None:
    """Add ``reprocess`` to ``sub``."""
    from ..protocols.processing import METHODS

    r = sub.add_parser(
        "reprocess",
        help="process finished runs again from their raw frames, with new settings, on Dask",
        description="Re-integrate a finished run's raw frames with new processing settings "
        "(mask, q range, bins, method, corrections), reconstruct and map it again, through "
        "the live processor's own functions, with the integration spread over a Dask "
        "cluster: a LocalCluster on this machine by default, or --scheduler ADDRESS. "
        "Writes DIR/reprocessed/<scan file>.v<N>.h5 (the original is never touched) and "
        "registers it with the run in the run store. Settings not given stay the run's.",
    )
    r.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="a scan file, or a run uid (8+ characters) in --dir",
    )
    r.add_argument("--dir", type=Path, default=Path("."), help="output folder (default .)")
    r.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="TOML [processing] table: its keys replace the run's settings",
    )
    r.add_argument("--bins", type=int, help="number of q bins")
    r.add_argument("--q-range", type=float, nargs=2, metavar=("LOW", "HIGH"), help="q in 1/Å")
    r.add_argument("--method", choices=METHODS, help="mean, trimmed or sigmaclip")
    r.add_argument("--corrections", metavar="LIST", help="sinogram corrections, in order")
    r.add_argument("--mask", metavar="FILE", help="mask image, non-zero pixels masked")
    r.add_argument("--dark", metavar="FILE", help="dark image")
    r.add_argument("--flat", metavar="FILE", help="flat-field image")
    r.add_argument("--polarisation", type=float, help="polarisation factor")
    r.add_argument("--svd-rank", type=int, metavar="R", help="truncated-SVD rank of q (0: none)")
    r.add_argument(
        "--scheduler", metavar="ADDRESS", help="a Dask scheduler (default: a LocalCluster here)"
    )
    r.add_argument(
        "--workers", type=int, metavar="N", help="LocalCluster workers (default: one per core)"
    )
    r.add_argument(
        "--dashboard",
        default="127.0.0.1:8787",
        metavar="ADDR",
        help="the LocalCluster's dashboard (default 127.0.0.1:8787; :0 any free port)",
    )
    r.add_argument("--config", type=Path, help="beamline config (TOML) with a [store] section")
    r.set_defaults(func=_reprocess)


def reprocess_settings(base: Any, args: argparse.Namespace) -> Any:
    """The run's settings ``base`` with the settings file's keys and the options on top."""
    import tomllib

    from ..live_processing.options import apply_options, read_settings_file
    from ..protocols.processing import ProcessingSettings

    if args.settings is not None:
        given = read_settings_file(args.settings)  # checked whole
        table = tomllib.loads(args.settings.read_text())
        keys = set(table.get("processing", table)) & set(given.to_dict())
        base = base.with_options(**{k: getattr(given, k) for k in keys})
    settings: ProcessingSettings = apply_options(base, args, workers=False)  # Dask's, here
    return settings


def _reprocess(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..live_processing.batch import cluster, replay, versions
    from ..protocols.processing import SettingsError

    try:
        originals = [replay.find_run(run, args.dir) for run in args.runs]
        plans = [(o, reprocess_settings(o.settings, args)) for o in originals]
    except (replay.ReprocessError, SettingsError) as exc:
        raise ConfigError(str(exc)) from exc
    written: list[tuple[Any, Path, int, Any]] = []
    try:
        with cluster.dask_client(args.scheduler, args.workers, args.dashboard) as client:
            log.info("Dask: %d workers; dashboard %s", len(client.scheduler_info()["workers"]),
                     client.dashboard_link)  # fmt: skip
            for original, settings in plans:
                with tqdm(
                    unit="frame", file=sys.stderr, disable=None, desc=original.file.stem[:8]
                ) as bar:
                    integrate = cluster.integrate_on(client, on_chunk=bar.update)
                    work = replay.work_folder(original.root)
                    try:
                        made = replay.replay(original, settings, integrate, work, bar.reset)
                        path, n = versions.publish(original, made)
                    finally:
                        replay.remove_work(work)
                written.append((original, path, n, settings))
                print(path, flush=True)
    except (replay.ReprocessError, cluster.ClusterError) as exc:
        raise ConfigError(str(exc)) from exc
    _register_versions(written, args.config)
    return 0


def _register_versions(written: list[tuple[Any, Path, int, Any]], config: Path | None) -> None:
    """Each new version into its run's node in the store, linked to the original."""
    from .config import load_config
    from .store import PROCESSED, StoreError, register_file, run_complete
    from .store_server import StoreSession

    cfg = load_config(config) if config else None
    if not written or (cfg is not None and cfg.store.off):
        return
    root = written[0][0].root
    session = StoreSession(root, *((cfg.store.uri, cfg.store.api_key) if cfg else ("", "")))
    try:
        client = session.open()
        for original, path, n, settings in written:
            if not run_complete(client, original.uid):
                log.warning("run %s is not in the store yet: operando store sync %s registers "
                            "it with this version", original.uid[:8], root)  # fmt: skip
                continue
            link = {"version": n, "derived_from": PROCESSED, "settings": settings.to_dict()}
            register_file(client, original.uid, path, f"{PROCESSED}_v{n}", link)
            log.info("run %s: version %d in the store as %s_v%d", original.uid[:8], n, PROCESSED, n)
    except StoreError as exc:
        log.warning("%s: the new versions are not in the store (operando store sync)", exc)
    finally:
        session.close()
