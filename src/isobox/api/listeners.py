"""Where `isobox serve` listens: a unix socket (mode 0660, group `isobox` if it exists), TCP only with mutual
TLS (as dockerd's --tlsverify), and sockets systemd hands over (sd_listen_fds: LISTEN_FDS/LISTEN_PID, fd 3 on)."""

from __future__ import annotations

import contextlib
import grp
import os
import socket
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from isobox.errors import ConflictError, HostError, InvalidArgumentError

SOCKET_MODE = 0o660
SOCKET_GROUP = "isobox"
SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at fd 3


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    cert: Path
    key: Path


@dataclass
class Listener:
    address: str  # as the user wrote it, for messages
    sock: socket.socket
    unix: bool
    owned_path: Path | None = None  # a socket file this server made, removed when it stops
    tls: ssl.SSLContext | None = None

    def close(self) -> None:
        self.sock.close()
        if self.owned_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.owned_path.unlink()


def server_tls(files: TlsFiles) -> ssl.SSLContext:
    """Mutual TLS as dockerd's --tlsverify: the client must show a certificate signed by ``ca_cert``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(files.cert), str(files.key))
        context.load_verify_locations(cafile=str(files.ca_cert))
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgumentError(f"cannot load the TLS files: {exc}", op="serve", path=str(files.cert)) from exc
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def open_listeners(hosts: list[str], tls: TlsFiles | None, default_socket: Path,
                   environ: Mapping[str, str] | None = None) -> list[Listener]:
    """Bind every -H (default: the unix socket; with socket activation: the sockets systemd passed).
    A TCP listener without mutual TLS is refused: whoever reaches the API is root on this host."""
    inherited = activated_sockets(os.environ if environ is None else environ)
    wanted = hosts or ([] if inherited else [f"unix://{default_socket}"])
    listeners: list[Listener] = []
    try:
        for host in wanted:
            scheme, _, rest = host.partition("://")
            if scheme == "unix":
                listeners.append(unix_listener(Path(rest or default_socket)))
            elif scheme == "tcp":
                listeners.append(tcp_listener(host, rest, tls))
            elif scheme == "fd":
                if not inherited:
                    raise InvalidArgumentError("-H fd:// needs sockets passed by systemd (LISTEN_FDS)", op="serve")
            else:
                raise InvalidArgumentError(f"unsupported host {host!r}: use unix:///path, tcp://ADDR:PORT or fd://",
                                           op="serve")
        for sock in inherited:
            listeners.append(_inherited_listener(sock, tls))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def unix_listener(path: Path) -> Listener:
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, SOCKET_MODE)
        _share_with_group(path)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise HostError(f"cannot listen on {path}: {exc.strerror}", op="serve", path=str(path)) from exc
    return Listener(f"unix://{path}", sock, unix=True, owned_path=path)


def _clear_stale(path: Path) -> None:
    """A socket file left by a server that died is replaced; one that answers belongs to a live server."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ConflictError(f"{path} exists and is not a socket", op="serve", path=str(path))
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise ConflictError(f"another server is listening on {path}", op="serve", path=str(path))


def _share_with_group(path: Path) -> None:
    """Group ``isobox`` (when the host has it) may use the socket, as group docker may use dockerd's;
    its directory becomes traversable for that group, nothing more."""
    try:
        gid = grp.getgrnam(SOCKET_GROUP).gr_gid
    except KeyError:
        return
    os.chown(path, 0, gid)
    parent = path.parent
    info = parent.stat()
    if info.st_gid != gid and not info.st_mode & stat.S_IXOTH:
        os.chown(parent, info.st_uid, gid)
    os.chmod(parent, stat.S_IMODE(info.st_mode) | stat.S_IXGRP)


def tcp_listener(address: str, rest: str, tls: TlsFiles | None) -> Listener:
    if tls is None:
        raise InvalidArgumentError(
            f"refusing to listen on {address} without mutual TLS: give --tlsverify --tlscacert --tlscert --tlskey "
            "(anyone who reaches the API controls this host)", op="serve")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgumentError(f"invalid TCP address {address!r}: use tcp://ADDR:PORT", op="serve")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise HostError(f"cannot listen on {address}: {exc.strerror}", op="serve") from exc
    return Listener(address, sock, unix=False, tls=server_tls(tls))


def activated_sockets(environ: Mapping[str, str]) -> list[socket.socket]:
    """The listening sockets systemd passed (sd_listen_fds(3): LISTEN_PID is us, LISTEN_FDS of them from fd 3)."""
    if environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    return sockets


def _inherited_listener(sock: socket.socket, tls: TlsFiles | None) -> Listener:
    sock.setblocking(False)
    if sock.family == socket.AF_UNIX:
        return Listener(f"fd://{sock.fileno()} ({sock.getsockname()})", sock, unix=True)
    if tls is None:
        sock.close()
        raise InvalidArgumentError("systemd passed a TCP socket: give --tlsverify --tlscacert --tlscert --tlskey",
                                   op="serve")
    return Listener(f"fd://{sock.fileno()}", sock, unix=False, tls=server_tls(tls))
