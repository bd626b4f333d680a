"""An HTTP proxy in front of moto that counts the Route53 calls passing through it, by operation."""

import http.client
import http.server
import re
import threading
from collections import Counter
from urllib.parse import urlsplit

from devstack.processes import free_port

ROUTE53_OPERATIONS = [  # (method, path pattern) -> operation, for the calls ExternalDNS makes
    ("GET", r"/2013-04-01/hostedzone$", "ListHostedZones"),
    ("GET", r"/2013-04-01/hostedzone/[^/]+/rrset$", "ListResourceRecordSets"),
    ("POST", r"/2013-04-01/hostedzone/[^/]+/rrset/?$", "ChangeResourceRecordSets"),
    ("GET", r"/2013-04-01/hostedzone/[^/]+$", "GetHostedZone"),
    ("POST", r"/2013-04-01/tags/hostedzone$", "ListTagsForResources"),
    ("GET", r"/2013-04-01/tags/hostedzone/[^/]+$", "ListTagsForResource"),
]


def route53_operation(method, path):
    path = path.split("?")[0]
    for verb, pattern, name in ROUTE53_OPERATIONS:
        if verb == method and re.match(pattern, path):
            return name
    return f"{method} {path}" if path.startswith("/2013-04-01/") else "other"


class CountingProxy:
    def __init__(self, target_url):
        target = urlsplit(target_url)
        self.target = (target.hostname, target.port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.calls = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy._lock:
                    proxy.calls[route53_operation(self.command, self.path)] += 1
                upstream = http.client.HTTPConnection(*proxy.target, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self):
        with self._lock:
            return Counter(self.calls)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
