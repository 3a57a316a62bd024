"""A second host for end-to-end tests: a network namespace joined to this one by a veth link.

The namespace reaches this host's PostgreSQL and Redis through relays listening on this side of
the link, and whatever else listens on `host_address` (an SMTP server of the test) directly. The
link can be cut (`cut`: the host side goes down, so packets are dropped and open connections
stall, as on a real network) and healed; the relays can also stop carrying data
(`pause_relays`) while the link stays up, which cuts a host off its database and broker alone.

The addresses are link-local (169.254.0.0/16), drawn per use, so two runs on one machine do not
collide, and never routed beyond the link. Needs root and iproute2 (`ip`), as CI has.
"""

import asyncio
import os
import random
import shutil
import subprocess
import threading
import uuid


def available() -> str:
    """'' when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    return ""


def _ip(*args, namespace=None):
    command = ["ip", *(["netns", "exec", namespace, "ip"] if namespace else []), *args]
    subprocess.run(command, check=True, capture_output=True, text=True)


class Relay:
    """A TCP relay from host:port (port chosen here) to a target, in a thread of its own.

    While paused it carries no data either way: the connections stay open and stall."""

    def __init__(self, host, target):
        self.host, self.target = host, target
        self.port = None
        self.loop = asyncio.new_event_loop()
        self._flowing = None
        self._server = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self):
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        return self

    async def _listen(self):
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, client_reader, client_writer):
        try:
            target_reader, target_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            self._pump(client_reader, target_writer), self._pump(target_reader, client_writer), return_exceptions=True
        )

    async def _pump(self, reader, writer):
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def pause(self):
        self.loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self):
        self.loop.call_soon_threadsafe(self._flowing.set)

    def stop(self):
        async def close():
            self._server.close()
            self._flowing.set()

        if self._server is not None:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class SecondHost:
    """A namespace and its link. `relay(target)` makes a target of this host reachable from there."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.namespace = f"ce2e-{tag}"
        self.host_side, self.far_side = f"vh{tag}", f"vn{tag}"
        subnet = f"169.254.{random.randint(1, 254)}.{random.randrange(0, 256, 4)}"
        prefix, last = subnet.rsplit(".", 1)
        self.host_address, self.far_address = f"{prefix}.{int(last) + 1}", f"{prefix}.{int(last) + 2}"
        self.relays = []

    def start(self):
        _ip("netns", "add", self.namespace)
        try:
            _ip("link", "add", self.host_side, "type", "veth", "peer", "name", self.far_side)
            _ip("link", "set", self.far_side, "netns", self.namespace)
            _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_side)
            _ip("link", "set", self.host_side, "up")
            _ip("addr", "add", f"{self.far_address}/30", "dev", self.far_side, namespace=self.namespace)
            _ip("link", "set", self.far_side, "up", namespace=self.namespace)
            _ip("link", "set", "lo", "up", namespace=self.namespace)
        except BaseException:
            self.stop()
            raise
        return self

    def relay(self, target_host, target_port) -> int:
        """A port on host_address that carries connections to the target; returns it."""
        relay = Relay(self.host_address, (target_host, target_port)).start()
        self.relays.append(relay)
        return relay.port

    def run_there(self, args):
        """The command line that runs `args` on the second host."""
        return ["ip", "netns", "exec", self.namespace, *args]

    def cut(self):
        _ip("link", "set", self.host_side, "down")

    def heal(self):
        _ip("link", "set", self.host_side, "up")

    def pause_relays(self):
        for relay in self.relays:
            relay.pause()

    def resume_relays(self):
        for relay in self.relays:
            relay.resume()

    def stop(self):
        for relay in self.relays:
            relay.stop()
        subprocess.run(["ip", "link", "del", self.host_side], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)
