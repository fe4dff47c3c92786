# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""A fault-injecting HTTP proxy for S3 (tests/soak, docs/reliability.md §2).

It sits between a DreamDB client and a local S3 server (scripts/s3_server.sh), bound to
127.0.0.1 only, and forwards each request as it came (byte for byte: SigV4 signatures,
the Host header included, stay valid), injecting faults by seeded probabilities:

  reset_before      the connection is reset before the request reaches the server
  delay             the request waits delay_ms (a uniform range) before it is forwarded
  error_500         500 InternalError, not forwarded
  slowdown_503      503 SlowDown, not forwarded
  conflict_409      409 ConditionalRequestConflict to a conditional write (If-Match or
                    If-None-Match), not forwarded
  precondition_412  412 PreconditionFailed to an If-Match write (a swap), not forwarded
  reset_after       forwarded and applied, then the connection is reset with no answer:
                    the lost response after a successful (conditional) write
  error_after       forwarded and applied, then a 500 instead of the server's answer
  reset_mid_body    the status line, headers and half the body, then a reset
  truncate_body     the status line, headers and half the body, then a clean close

At most one fault per request. `latency_ms` adds a fixed delay to every request (what a
cloud region's round trip costs). Threads, one per client connection; every upstream
request uses its own connection (`Connection: close`), and responses reach the client
keep-alive when their length is framed (Content-Length or chunked).

Thread-safety: a FaultProxy may be started, stopped and read (stats) from any thread.

Standalone: python tests/soak/s3_fault_proxy.py --upstream http://127.0.0.1:8333
            [--port 0] [--seed 1] [--rate 0.1] [--latency-ms 20]
prints the proxy's endpoint and runs until interrupted.
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field, fields

FAULTS = ("reset_before", "delay", "error_500", "slowdown_503", "conflict_409",
          "precondition_412", "reset_after", "error_after", "reset_mid_body", "truncate_body")


@dataclass
class FaultConfig:
    """Probability of each fault per request (their sum at most 1), and the delays."""
    reset_before: float = 0.0
    delay: float = 0.0
    error_500: float = 0.0
    slowdown_503: float = 0.0
    conflict_409: float = 0.0
    precondition_412: float = 0.0
    reset_after: float = 0.0
    error_after: float = 0.0
    reset_mid_body: float = 0.0
    truncate_body: float = 0.0
    delay_ms: tuple[float, float] = (50.0, 400.0)
    latency_ms: float = 0.0  # added to every request

    @staticmethod
    def uniform(rate: float, **kw) -> "FaultConfig":
        """Every fault with probability rate / len(FAULTS)."""
        return FaultConfig(**{name: rate / len(FAULTS) for name in FAULTS}, **kw)

    def probabilities(self) -> list[tuple[str, float]]:
        out = [(name, getattr(self, name)) for name in FAULTS]
        total = sum(p for _, p in out)
        if total > 1.0 + 1e-9 or any(p < 0 for _, p in out):
            raise ValueError(f"fault probabilities must be >= 0 and sum to at most 1: {out}")
        return out


@dataclass
class ProxyStats:
    requests: int = 0
    by_fault: dict[str, int] = field(default_factory=lambda: {name: 0 for name in FAULTS})
    by_method: dict[str, int] = field(default_factory=dict)
    upstream_errors: int = 0
    bytes_up: int = 0    # request bodies forwarded to the server
    bytes_down: int = 0  # response bodies sent back to the client
    # Rounds of dependent requests: how often a request arrived while none was in flight.
    # Requests sent together overlap (with latency_ms > 0 surely) and count once, so with
    # a latency L this is about (wall time spent in requests) / L.
    waves: int = 0
    in_flight: int = 0
    # Seconds during which at least one request was in flight: with latency_ms L, a
    # window of N requests kept full (a sliding window) shows as one wave but busy_s / L
    # of about the rounds it really cost.
    busy_s: float = 0.0
    busy_since: float = 0.0
    # (wave, method, request target, Range header) of each request, when trace is on.
    trace: list = field(default_factory=list)


class _Closed(Exception):
    """The client closed its connection."""


def _reset(sock: socket.socket) -> None:
    """Closes `sock` with a TCP RST (SO_LINGER 0) instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _read_head(sock: socket.socket, buf: bytearray) -> bytes:
    """The bytes up to and including the blank line after the headers; the rest stays in
    `buf`. Raises _Closed at a clean end of the connection."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end + 4])
            del buf[:end + 4]
            return head
        if len(buf) > 1 << 20:
            raise ValueError("request head larger than 1 MiB")
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed()
        buf += chunk


def _read_exact(sock: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            raise _Closed()
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _parse_headers(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
    return lines[0], headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _error_response(status: int, reason: str, code: str, message: str) -> bytes:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class FaultProxy:
    """The proxy. `upstream` is the server's http://host:port."""

    def __init__(self, upstream: str, config: FaultConfig | None = None, seed: int = 0,
                 port: int = 0):
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream = (u.hostname, u.port or 80)
        self.config = config or FaultConfig()
        self._probabilities = self.config.probabilities()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.stats = ProxyStats()
        self.trace = False  # set to record every request in stats.trace
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._clients: set[socket.socket] = set()
        self._stopping = False
        self._accept_thread = threading.Thread(target=self._accept, daemon=True)

    # ---- lifecycle ----

    def start(self) -> "FaultProxy":
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept_thread.join(timeout=5)
        for t in list(self._threads):
            t.join(timeout=5)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def set_config(self, config: FaultConfig) -> None:
        probabilities = config.probabilities()
        with self._lock:
            self.config = config
            self._probabilities = probabilities

    def snapshot(self) -> dict:
        with self._lock:
            return {"requests": self.stats.requests, "by_fault": dict(self.stats.by_fault),
                    "by_method": dict(self.stats.by_method),
                    "upstream_errors": self.stats.upstream_errors}

    # ---- serving ----

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                self._clients.add(client)
                self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _choose(self, method: str, headers: list[tuple[str, str]]) -> tuple[str | None, float]:
        conditional = _header(headers, "if-match") is not None or \
            _header(headers, "if-none-match") is not None
        if_match = method == "PUT" and _header(headers, "if-match") is not None
        with self._lock:
            self.stats.requests += 1
            self.stats.by_method[method] = self.stats.by_method.get(method, 0) + 1
            u = self._rng.random()
            delay = self._rng.uniform(*self.config.delay_ms) / 1000.0
            chosen = None
            for name, p in self._probabilities:
                if u < p:
                    chosen = name
                    break
                u -= p
            if chosen == "conflict_409" and not conditional:
                chosen = None
            if chosen == "precondition_412" and not if_match:
                chosen = None
            if chosen is not None:
                self.stats.by_fault[chosen] += 1
        return chosen, delay

    def _serve(self, client: socket.socket) -> None:
        buf = bytearray()
        try:
            client.settimeout(120)
            while not self._stopping:
                head = _read_head(client, buf)
                request_line, headers = _parse_headers(head)
                method = request_line.split(" ", 1)[0]
                if _header(headers, "transfer-encoding") is not None:
                    client.sendall(_error_response(501, "Not Implemented", "NotImplemented",
                                                   "the fault proxy needs Content-Length"))
                    return
                if (_header(headers, "expect") or "").lower() == "100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = _read_exact(client, buf, int(_header(headers, "content-length") or 0))
                if not self._exchange(client, method, head, headers, body):
                    return
        except (_Closed, ConnectionError, TimeoutError, OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._clients.discard(client)
            try:
                client.close()
            except OSError:
                pass

    def _exchange(self, client: socket.socket, method: str, head: bytes,
                  headers: list[tuple[str, str]], body: bytes) -> bool:
        """One request: returns whether the client connection stays open."""
        with self._lock:
            if self.stats.in_flight == 0:
                self.stats.waves += 1
                self.stats.busy_since = time.monotonic()
            self.stats.in_flight += 1
            if self.trace and len(self.stats.trace) < 100_000:
                target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[1]
                self.stats.trace.append((self.stats.waves, method, target.split("?")[0],
                                         _header(headers, "range") or ""))
        try:
            return self._exchange_counted(client, method, head, headers, body)
        finally:
            with self._lock:
                self.stats.in_flight -= 1
                if self.stats.in_flight == 0:
                    self.stats.busy_s += time.monotonic() - self.stats.busy_since

    def _exchange_counted(self, client: socket.socket, method: str, head: bytes,
                          headers: list[tuple[str, str]], body: bytes) -> bool:
        fault, delay = self._choose(method, headers)
        if self.config.latency_ms > 0:
            time.sleep(self.config.latency_ms / 1000.0)
        if fault == "reset_before":
            _reset(client)
            return False
        if fault == "delay":
            time.sleep(delay)
        if fault == "error_500":
            client.sendall(_error_response(500, "Internal Server Error", "InternalError",
                                           "injected by the fault proxy"))
            return True
        if fault == "slowdown_503":
            client.sendall(_error_response(503, "Slow Down", "SlowDown",
                                           "injected by the fault proxy"))
            return True
        if fault == "conflict_409":
            client.sendall(_error_response(409, "Conflict", "ConditionalRequestConflict",
                                           "injected by the fault proxy"))
            return True
        if fault == "precondition_412":
            client.sendall(_error_response(412, "Precondition Failed", "PreconditionFailed",
                                           "injected by the fault proxy"))
            return True
        try:
            response = self._forward(head, body)
        except OSError:
            with self._lock:
                self.stats.upstream_errors += 1
            client.sendall(_error_response(502, "Bad Gateway", "BadGateway",
                                           "the fault proxy could not reach the server"))
            return False
        if fault == "reset_after":
            _reset(client)
            return False
        if fault == "error_after":
            client.sendall(_error_response(500, "Internal Server Error", "InternalError",
                                           "injected by the fault proxy after the server "
                                           "applied the request"))
            return True
        resp_head, resp_body, framed = self._reframe(method, response)
        if fault in ("reset_mid_body", "truncate_body") and len(resp_body) >= 2 and framed:
            client.sendall(resp_head + resp_body[:len(resp_body) // 2])
            if fault == "reset_mid_body":
                _reset(client)
            else:
                client.shutdown(socket.SHUT_RDWR)
            return False
        with self._lock:
            self.stats.bytes_up += len(body)
            self.stats.bytes_down += len(resp_body)
        client.sendall(resp_head + resp_body)
        return framed

    def _forward(self, head: bytes, body: bytes) -> bytes:
        """Sends the request as it came (but `Connection: close`) and reads the whole
        response."""
        lines = head.decode("latin-1").split("\r\n")
        kept = [lines[0]] + [line for line in lines[1:]
                             if line and not line.lower().startswith("connection:")]
        request = ("\r\n".join(kept) + "\r\nConnection: close\r\n\r\n").encode("latin-1") + body
        with socket.create_connection(self.upstream, timeout=120) as up:
            up.sendall(request)
            chunks = []
            while True:
                chunk = up.recv(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _reframe(method: str, response: bytes) -> tuple[bytes, bytes, bool]:
        """(head without the Connection header, body, whether the body's end is framed so
        the client connection may be reused)."""
        end = response.find(b"\r\n\r\n")
        if end < 0:
            raise ConnectionError("the server's response has no header end")
        status_line, headers = _parse_headers(response[:end + 4])
        body = response[end + 4:]
        status = int(status_line.split(" ")[1])
        framed = (method == "HEAD" or status in (204, 304) or
                  _header(headers, "content-length") is not None or
                  (_header(headers, "transfer-encoding") or "").lower() == "chunked")
        kept = [f"{k}: {v}" for k, v in headers if k.lower() != "connection"]
        if not framed:
            kept.append("Connection: close")
        head = ("\r\n".join([status_line] + kept) + "\r\n\r\n").encode("latin-1")
        return head, body, framed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="the S3 server, http://host:port")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="total fault probability per request, spread over every fault")
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="fixed delay added to every request")
    for f in fields(FaultConfig):
        if f.name in FAULTS:
            ap.add_argument("--" + f.name.replace("_", "-"), type=float, default=None,
                            help=f"probability of {f.name} (overrides --rate)")
    args = ap.parse_args()
    config = FaultConfig.uniform(args.rate, latency_ms=args.latency_ms)
    for name in FAULTS:
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)
    proxy = FaultProxy(args.upstream, config, seed=args.seed, port=args.port).start()
    print(proxy.endpoint, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
        print(proxy.snapshot(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
