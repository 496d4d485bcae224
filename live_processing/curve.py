"""CURVE on the worker pipes: integration workers off this host authenticate.

The processor's dispatch and collect sockets are bound on loopback by default, and
need nothing more. Bound on a network address they must be secured: the processor is
a CURVE server with its own key pair, and accepts only workers whose public key is in
its keys folder (ZAP, through pyzmq's authenticator). The folder, made once with
``python -m operando.live_processing.curve DIR [NAME ...]``::

    DIR/processor.key, DIR/processor.key_secret    the processor's pair
    DIR/workers/NAME.key, NAME.key_secret          one pair per worker (``local``: the
                                                   processor's own worker processes)

Copy ``processor.key`` and a worker's pair to the machine that runs that worker.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from pathlib import Path
from urllib.parse import urlparse

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger(__name__)

SERVER = "processor"
LOCAL = "local"


class CurveError(ValueError):
    """Keys missing, or a network bind without them."""


def is_loopback(address: str) -> bool:
    """Whether a ZMQ address stays on this host (ipc, inproc, or tcp on loopback)."""
    if not address.startswith("tcp://"):
        return True
    host = urlparse(address).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or '*': every interface


def make_keys(folder: Path, workers: list[str]) -> None:
    """The processor's key pair and one per worker (and ``local``) under ``folder``;
    pairs already there are kept."""
    (folder / "workers").mkdir(parents=True, exist_ok=True)
    if not (folder / f"{SERVER}.key_secret").exists():
        zmq.auth.create_certificates(folder, SERVER)
    for name in {LOCAL, *workers}:
        if not (folder / "workers" / f"{name}.key_secret").exists():
            zmq.auth.create_certificates(folder / "workers", name)


def _pair(path: Path) -> tuple[bytes, bytes]:
    if not path.exists():
        raise CurveError(f"CURVE keys: {path} is missing (make them: {__name__} DIR NAME)")
    public, secret = zmq.auth.load_certificate(path)
    if secret is None:
        raise CurveError(f"CURVE keys: {path} holds no secret key")
    return public, secret


class CurveServer:
    """The processor's side: an authenticator on ``ctx`` and server keys for sockets."""

    def __init__(self, ctx: zmq.Context, folder: Path) -> None:
        self.public, self.secret = _pair(folder / f"{SERVER}.key_secret")
        self.auth = ThreadAuthenticator(ctx, log=log)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(folder / "workers"))

    def secure(self, sock: zmq.Socket) -> None:
        """Make ``sock`` (before its bind) a CURVE server."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def stop(self) -> None:
        self.auth.stop()


def secure_client(sock: zmq.Socket, folder: Path, name: str) -> None:
    """Make ``sock`` (before its connect) a CURVE client: worker ``name``'s pair."""
    server, _ = zmq.auth.load_certificate(_checked(folder / f"{SERVER}.key"))
    sock.curve_publickey, sock.curve_secretkey = _pair(folder / "workers" / f"{name}.key_secret")
    sock.curve_serverkey = server


def _checked(path: Path) -> Path:
    if not path.exists():
        raise CurveError(f"CURVE keys: {path} is missing (copy it from the processor's host)")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="the keys folder")
    p.add_argument("names", nargs="*", help="workers to make key pairs for")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    make_keys(args.folder, args.names)
    log.info(
        "CURVE keys in %s: %s, workers: %s", args.folder, SERVER, " ".join([LOCAL, *args.names])
    )


if __name__ == "__main__":
    main()
