"""One time limit for a whole webhook request: its connections, its redirects and every byte of its answers.

httpx's timeouts bound each socket operation only, so a receiver sending one byte at a time, or taking almost the
timeout per redirect, could hold a call for as long as it liked. Here every connection the request opens is noted
(httpcore's `trace` hook) and shut down when the deadline passes, which ends at once any read or write still
waiting on it; each new connection gets only the time left.
"""

import socket
import threading
import time

import httpx

_CONNECTED = "connection.connect_tcp.complete"


class DeadlinePassed(Exception):
    """The deadline passed before the request could start its next step."""


class Deadline:
    """Use as a context manager around one request and its redirects; pass `trace` as the request's trace hook."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._ends_at = time.monotonic() + seconds
        self._lock = threading.Lock()
        # Duplicates of the connections' sockets: shutting a duplicate down ends the connection even once TLS has
        # taken the original socket over, and a duplicate's descriptor cannot be reused while we hold it.
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        with self._lock:
            self._closed = True
            for sock in self._sockets:
                sock.close()

    def timeout(self) -> httpx.Timeout:
        """What is left, as the timeout of the next connection and of each of its reads and writes."""
        left = self._ends_at - time.monotonic()
        if self.expired or left <= 0:
            raise DeadlinePassed()
        return httpx.Timeout(left)

    def trace(self, event: str, info: dict) -> None:
        if event != _CONNECTED:
            return
        duplicate = info["return_value"].get_extra_info("socket").dup()
        with self._lock:
            if self._closed:
                duplicate.close()
                return
            self._sockets.append(duplicate)
            if self.expired:  # connected just as the time ran out
                _shut_down(duplicate)

    def _expire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.expired = True
            for sock in self._sockets:
                _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # the receiver closed it already
        pass
