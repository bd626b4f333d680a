"""A TCP proxy in front of a real server that can stall: while stalled, what clients send is held, not forwarded — a
server that hangs without refusing — and held requests can later be delivered to the server, after their clients gave
up, as a slow network or a paused server would deliver them."""

import http.client
import socket
import threading

from .podnet import relay
from .processes import free_port


class StallProxy:
    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._stalled = threading.Event()
        self._held = []  # what each connection accepted while stalled has sent
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self):
        self._stalled.set()

    def resume(self):
        """New connections are forwarded again; those held stay held (deliver them, or not)."""
        self._stalled.clear()

    def deliver(self, containing):
        """Send each held request whose bytes contain `containing` to the server, now, reading its answer (no client
        is left to hear it). Returns how many were delivered."""
        with self._lock:
            chosen = [received for received in self._held if containing in received]
            self._held = [received for received in self._held if containing not in received]
        for received in chosen:
            with socket.create_connection(self.target, timeout=10) as upstream:
                upstream.sendall(bytes(received))
                answer = http.client.HTTPResponse(upstream)  # read whole (a half-close would cancel the request)
                answer.begin()
                answer.read()
        return len(chosen)

    def stop(self):
        self._closing = True
        self._listener.close()

    def _accept(self):
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            target = self._hold if self._stalled.is_set() else self._forward
            threading.Thread(target=target, args=(client,), daemon=True).start()

    def _hold(self, client):
        received = bytearray()
        with self._lock:
            self._held.append(received)
        with client:
            try:
                while chunk := client.recv(65536):
                    received.extend(chunk)
            except OSError:
                pass

    def _forward(self, client):
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with client, upstream:
            relay(client, upstream)
