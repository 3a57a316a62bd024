"""A real HTTP server for the link check's tests: a threaded http.server on a free port, in this process.

    def test_something(http_server_factory):
        server = http_server_factory()             # on 127.0.0.1
        server.url("/ok")                          # http://127.0.0.1:PORT/ok

Paths it answers (any method; HEAD gets the headers alone):

    /ok, /anything-else-not-below   200
    /missing                        404
    /broken                         500
    /limited                        429
    /head-refused                   405 to HEAD, 200 to GET
    /chain/N                        302 to /chain/N-1, ... /chain/0 is 200 (relative Locations)
    /loop                           302 to itself
    /slow                           answers only once `release()` is called (the teardown calls it)
    /to?url=U                       302 to U

With `tls=` (an ssl server context) it serves HTTPS on 127.0.0.1, and `url()` names `host` (say "localhost",
the certificate's name). Every request is recorded in `requests` as (method, path, headers) in arrival order.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

SLOW_LIMIT_SECONDS = 60  # /slow never holds a thread longer, whatever the test does


class LinkServer:
    def __init__(self, host="127.0.0.1", *, tls=None):
        self.requests = []
        self.scheme = "https" if tls else "http"
        self.url_host = host
        self._released = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer("HEAD")

            def do_GET(self):
                self._answer("GET")

            def _answer(self, method):
                with server._lock:
                    server.requests.append((method, self.path, dict(self.headers)))
                status, location = server.route(method, self.path)
                if status is None:
                    self.close_connection = True  # hang up without an answer
                    return
                body = b"" if method == "HEAD" else f"{status}\n".encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(f"{status}\n")))
                self.end_headers()
                if body:
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host if tls is None else "127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:  # `tls`: an ssl server context; the server listens on 127.0.0.1, named `host` in URLs
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path):
        return f"{self.scheme}://{self.url_host}:{self.port}{path}"

    def route(self, method, raw_path):
        split = urlsplit(raw_path)
        path = split.path
        if path == "/missing":
            return 404, ""
        if path == "/broken":
            return 500, ""
        if path == "/limited":
            return 429, ""
        if path == "/head-refused":
            return (405, "") if method == "HEAD" else (200, "")
        if path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            return (200, "") if left == 0 else (302, str(left - 1))
        if path == "/loop":
            return 302, "/loop"
        if path == "/to":
            return 302, parse_qs(split.query)["url"][0]
        if path == "/slow":
            self._released.wait(SLOW_LIMIT_SECONDS)
            return None, ""
        return 200, ""

    def paths(self, method=None):
        with self._lock:
            return [path for m, path, _headers in self.requests if method is None or m == method]

    def release(self):
        self._released.set()

    def stop(self):
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server_factory():
    servers = []

    def make(host="127.0.0.1", **kwargs):
        server = LinkServer(host, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
