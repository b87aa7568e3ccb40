"""Test hosts on this machine: network namespaces the test makes itself (`ip netns add`, a veth pair
each), every one with an address and a hostname of its own, removed when the block ends; and a
TCP forwarder, for a server that listens on loopback only (PostgreSQL) to be reached from them.

Each host N gets a /24 of its own in 10.200.0.0/16 that no interface here uses yet: the root
namespace's end of its veth is `gateway` (10.200.X.1), the host's own end `address` (10.200.X.2).
A host reaches nothing but the root namespace's addresses over that link. Needs root (CAP_NET_ADMIN
and, for the hostname, CAP_SYS_ADMIN); `namespaced_hosts` skips, saying why, where they cannot be made.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

_SUBNETS = range(10, 250)  # the third octet of 10.200.X.0/24


@dataclass(frozen=True)
class Host:
    """One test host: its namespace, hostname, address, and the root namespace's end of its link."""

    namespace: str
    hostname: str
    address: str
    gateway: str

    def prefix(self) -> list[str]:
        """The command prefix that runs a command on this host, under its own hostname."""
        return [
            "ip",
            "netns",
            "exec",
            self.namespace,
            "unshare",
            "--uts",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            self.hostname,
        ]


def _ip(*args: str, namespace: str | None = None) -> None:
    command = (
        ["ip", *args] if namespace is None else ["ip", "netns", "exec", namespace, "ip", *args]
    )
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


def _used_subnets() -> set[int]:
    out = subprocess.run(
        ["ip", "-o", "-4", "addr"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    used = set()
    for field in out.split():
        if field.startswith("10.200."):
            used.add(int(field.split(".")[2]))
    return used


def _make(count: int, tag: str, hosts: list[Host]) -> None:
    """Make the hosts, each added to `hosts` as soon as its namespace exists (to be removed)."""
    free = sorted(set(_SUBNETS) - _used_subnets())
    subnets = random.sample(free, count)  # another suite may be making hosts of its own now
    for n, subnet in enumerate(subnets):
        host = Host(
            namespace=f"arena-{tag}-{n}",
            hostname=f"arena-test-host-{n}",
            address=f"10.200.{subnet}.2",
            gateway=f"10.200.{subnet}.1",
        )
        outside, inside = f"va{tag}o{n}", f"va{tag}i{n}"  # interface names: 15 characters at most
        _ip("netns", "add", host.namespace)
        hosts.append(host)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", host.namespace)
        _ip("addr", "add", f"{host.gateway}/24", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("addr", "add", f"{host.address}/24", "dev", inside, namespace=host.namespace)
        _ip("link", "set", inside, "up", namespace=host.namespace)
        _ip("link", "set", "lo", "up", namespace=host.namespace)


def _remove(hosts: list[Host]) -> None:
    for host in hosts:  # the namespace's end of the veth goes with it, and the pair with that end
        subprocess.run(
            ["ip", "netns", "delete", host.namespace], capture_output=True, timeout=30, check=False
        )


@contextlib.contextmanager
def namespaced_hosts(count: int) -> Iterator[list[Host]]:
    """`count` test hosts for the with-block; the test is skipped, with the reason, where network
    namespaces cannot be made (not root, no iproute2)."""
    tag = secrets.token_hex(2)
    hosts: list[Host] = []
    try:
        try:
            _make(count, tag, hosts)
            subprocess.run(
                [*hosts[0].prefix(), "true"], check=True, capture_output=True, timeout=30
            )
        except FileNotFoundError as exc:
            pytest.skip(f"test hosts need iproute2's `ip` (apt-get install iproute2): {exc}")
        except subprocess.CalledProcessError as exc:
            why = (exc.stderr or b"").strip()
            why = why.decode(errors="replace") if isinstance(why, bytes) else why
            pytest.skip(f"network namespaces cannot be made here ({' '.join(exc.cmd)}): {why}")
        yield hosts
    finally:
        _remove(hosts)


def forwarding_to(host: str, port: int):
    """A connection handler for serve_in_thread that relays each connection to host:port."""

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pump(reader, target_writer), _pump(target_reader, writer))

    return forward


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until one side ends, then close the other: a killed client ends its server's side."""
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
