"""A hostile peer where a cluster API should be: a TLS server whose every answer is an attack on the reader. Not an
imitation of Kubernetes (only GET /version gets an answer worth the name); see tests/clusters/test_hostile_cluster.py."""

import socket
import ssl
import threading
import time

from tests.clusters.test_probe import self_signed

CHUNK = b"x" * 65536

# attack -> what the server does once it has read a request's head
ATTACKS = {
    "endless body": "200, no Content-Length, then bytes for as long as the reader reads",
    "endless JSON string": '200, {"gitVersion": "aaaa… without end',
    "huge Content-Length": "200 with Content-Length: 10 GB, then bytes without end",
    "one-byte drip": "200 and its headers, then one byte of a JSON body every 50 ms",
    "dripped headers": "the status line, then one byte of a header every 50 ms (no end of headers ever)",
    "deep nesting": "200 with a JSON body of 400,000 nested lists (800 kB)",
    "nesting past the limit": "200 with JSON nested 150 levels deep (parseable, but deeper than orgdns reads)",
    "redirect": "302 to another server (the reader must not follow it)",
    "a list for an object": "200 with a version for GET /version, then [1, 2] for whatever orgdns asks next",
}


class HostileApi:
    """serve(attack) and connect at url with ca_pem; `target` is a second listener the redirect points at (its
    `accepted` counts the connections it got)."""

    def __init__(self, tmp_path):
        self.ca_pem = self_signed(tmp_path)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.attack = "endless body"
        self.sent = 0  # bytes sent since serve(), over every connection (after the head of each answer)
        self.target = socket.create_server(("127.0.0.1", 0))
        self.target_accepted = 0
        self.connections = 0  # accepted by the hostile server
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._accept_target, daemon=True).start()

    def serve(self, attack):
        assert attack in ATTACKS, attack
        self.attack = attack
        self.sent = 0

    def stop(self):
        self.stopped.set()
        self.listener.close()
        self.target.close()

    def _accept_target(self):
        while not self.stopped.is_set():
            try:
                connection, _ = self.target.accept()
            except OSError:
                return
            self.target_accepted += 1
            connection.close()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection):
        try:
            with self.context.wrap_socket(connection, server_side=True) as tls:
                tls.settimeout(30)
                while head := self._read_head(tls):
                    self._answer(tls, head)
        except (OSError, ssl.SSLError):
            pass  # the reader hung up: what it should do

    def _read_head(self, tls):
        head = b""
        while b"\r\n\r\n" not in head:
            data = tls.recv(4096)
            if not data:
                return False
            head += data
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            0,
        )
        body = head.split(b"\r\n\r\n", 1)[1]
        while len(body) < length:
            body += tls.recv(length - len(body))
        return head

    def _answer(self, tls, head):
        attack = self.attack
        if attack == "redirect":
            location = f"https://127.0.0.1:{self.target.getsockname()[1]}/version"
            tls.sendall(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode())
            return
        if attack == "a list for an object":
            body = b'{"gitVersion": "v1.37.2"}' if head.startswith(b"GET /version ") else b"[1, 2]"
            tls.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            return
        if attack in ("deep nesting", "nesting past the limit"):
            depth = 400_000 if attack == "deep nesting" else 150
            body = b"[" * depth + b"]" * depth
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            tls.sendall(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            self.sent += len(body)
            return
        if attack == "dripped headers":
            tls.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not self.stopped.is_set():
                tls.sendall(b"a")
                self.sent += 1
                time.sleep(0.05)
        if attack == "one-byte drip":
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
            tls.sendall(b'{"gitVersion": "')
            while not self.stopped.is_set():
                tls.sendall(b"a")
                self.sent += 1
                time.sleep(0.05)
        declared = "Content-Length: 10000000000\r\n" if attack == "huge Content-Length" else "Connection: close\r\n"
        tls.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{declared}\r\n".encode())
        if attack == "endless JSON string":
            tls.sendall(b'{"gitVersion": "')
        while not self.stopped.is_set():
            tls.sendall(CHUNK)
            self.sent += len(CHUNK)
