"""The controller's side of the outer network, for the devcloud's local nodes.

On a real cloud a compute node reaches the controller at its address on the outer
network: the APIs through Traefik (HTTPS, by name), RabbitMQ's TLS listener, the
nova metadata API. Here the devcloud's services listen on 127.0.0.1 of this machine
and the nodes live in network namespaces of their own, so this process stands at the
controller's address inside the outer network's namespace and forwards each
connection, as raw TCP, to the devcloud's port on 127.0.0.1, as k3s's servicelb
forwards a LoadBalancer port to its pod: TLS, names and redirects are the devcloud's
real Traefik's (ingress.py) and the broker's own TLS listener's, never this relay's.

Its listening sockets are made inside the outer namespace (setns on this thread), its
outgoing connections on this machine's loopback: no traffic ever leaves the
namespaces the devcloud made, nor 127.0.0.1.

    python -m osception.devcloud.relay ROUTES.json

ROUTES.json: {"netns": NAME, "routes": [{"listen": "IP:PORT", "to": "127.0.0.1:PORT"}]}
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import socket
import sys

CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def netns(name: str):
    """Run the block in network namespace `name` (/run/netns/<name>, `ip netns add`):
    sockets made inside stay in it. Only this thread moves (setns)."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into network namespace {name}")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(home)
        os.close(target)


def listener(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


def forwarder(target: str):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = target.rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()
    return handle


async def serve(routes: list[dict], sockets: list[socket.socket]) -> None:
    servers = [await asyncio.start_server(forwarder(route["to"]), sock=sock)
               for route, sock in zip(routes, sockets)]
    print("relay ready: " + ", ".join(r["listen"] for r in routes), flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(path: str) -> None:
    spec = json.loads(open(path).read())
    with netns(spec["netns"]):
        sockets = [listener(route["listen"]) for route in spec["routes"]]
    asyncio.run(serve(spec["routes"], sockets))


if __name__ == "__main__":
    main(sys.argv[1])
