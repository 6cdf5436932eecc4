"""``seqtasks serve`` in a subprocess: started, waited for (bounded), stopped — for tests and benchmarks."""

from __future__ import annotations

import http.client
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

LISTENING = re.compile(r"listening on (http://[^\s]+)")


class Server:
    """A running server: its process, its URL and everything it printed so far."""

    def __init__(self, process: subprocess.Popen, url: str, lines: list[str]) -> None:
        self.process = process
        self.url = url
        self.lines = lines

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host.strip("[]"), int(port)

    def log(self) -> str:
        return "".join(self.lines)


@contextmanager
def served(
    command: Sequence[str], cwd: str | None = None, env: dict[str, str] | None = None, timeout: float = 60.0
) -> Iterator[Server]:
    """Run ``command`` (a ``seqtasks serve --port 0 …`` command line), wait until it answers
    ``/api/models`` (at most ``timeout`` seconds), yield it, then terminate it (kill after 10 s)."""
    process = subprocess.Popen(
        list(command), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = LISTENING.search(line)
            if match:
                found.put(match.group(1))

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}):\n{''.join(lines)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no 'listening on' line in {timeout} s:\n{''.join(lines)}")
            with suppress(queue.Empty):
                url = found.get(timeout=0.2)
        server = Server(process, url, lines)
        while not answers(server):  # bound before listening, so this answers at once; bounded all the same
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the server never answered /api/models:\n{''.join(lines)}")
            time.sleep(0.1)
        yield server
    finally:
        stop(process)


def answers(server: Server) -> bool:
    try:
        connection = http.client.HTTPConnection(*server.address, timeout=5)
        try:
            connection.request("GET", "/api/models")
            return connection.getresponse().status == 200
        finally:
            connection.close()
    except OSError:
        return False


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
