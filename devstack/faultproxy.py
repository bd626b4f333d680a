"""A TLS proxy in front of a real Kubernetes API server that injects faults: answers with an error status
(500/503, 409, 403 "being terminated"), slowness, or a cluster that is down. It serves the API server's own
certificate, so clients trust it with the cluster's CA."""

import collections
import http.client
import http.server
import json
import ssl
import threading
import time
from urllib.parse import urlsplit

from devstack.processes import free_port


class FaultProxy:
    def __init__(self, target_url, certfile, keyfile, ca_pem):
        target = urlsplit(target_url)
        self.target = (target.hostname, target.port)
        self.upstream_context = ssl.create_default_context(cadata=ca_pem)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.request_count = 0
        self.requests = collections.deque(maxlen=10000)  # (method, path) of requests since heal(), oldest first
        self.bytes_received = 0  # HTTP requests (request line, headers, body) and answers, as the proxy sees them
        self.bytes_sent = 0
        self.delay = 0.0
        self.down = False
        self._faults = []  # [remaining, status, message, method, path fragment]
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one_request(self):
                if proxy.down:
                    self.close_connection = True
                    self.connection.close()
                    return
                super().handle_one_request()

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy._lock:
                    proxy.request_count += 1
                    proxy.requests.append((self.command, self.path))
                    proxy.bytes_received += len(self.raw_requestline) + len(self.headers.as_bytes()) + len(body)
                    fault = proxy._take_fault(self.command, self.path)
                if proxy.delay:
                    time.sleep(proxy.delay)
                if fault:
                    status, message = fault
                    self._reply(
                        status,
                        json.dumps(
                            {
                                "kind": "Status",
                                "apiVersion": "v1",
                                "status": "Failure",
                                "message": message,
                                "code": status,
                            }
                        ).encode(),
                    )
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                response = self._upstream_request(body, headers)
                self._reply(response.status, response.read(), response.getheader("Content-Type", "application/json"))

            def finish(self):
                super().finish()
                if getattr(self, "upstream", None) is not None:
                    self.upstream.close()

            def _upstream_request(self, body, headers):
                """Over this client connection's own upstream connection, kept alive (a TLS handshake per request
                would cost more than the request)."""
                for attempt in (1, 2):
                    if getattr(self, "upstream", None) is None:
                        self.upstream = http.client.HTTPSConnection(
                            *proxy.target, context=proxy.upstream_context, timeout=60
                        )
                    try:
                        self.upstream.request(self.command, self.path, body=body or None, headers=headers)
                        return self.upstream.getresponse()
                    except (ConnectionError, http.client.HTTPException):
                        self.upstream.close()
                        self.upstream = None
                        if attempt == 2:
                            raise
                return None

            def _reply(self, status, data, content_type="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                with proxy._lock:
                    proxy.bytes_sent += sum(map(len, self._headers_buffer)) + 2 + len(data)  # + the blank line
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile, keyfile)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail_next(self, times, status=503, message="injected fault", method=None, path=""):
        """The next `times` requests (of this method, on paths containing `path`) get `status` instead of an answer."""
        with self._lock:
            self._faults.append([times, status, message, method, path])

    def heal(self):
        with self._lock:
            self._faults.clear()
            self.requests.clear()
        self.delay, self.down = 0.0, False

    def _take_fault(self, method, path):
        for fault in self._faults:
            remaining, status, message, fault_method, fragment = fault
            if remaining > 0 and fault_method in (None, method) and fragment in path:
                fault[0] -= 1
                return status, message
        return None

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
