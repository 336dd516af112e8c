#!/usr/bin/env python3
"""A stand-in for a Flask app behind gunicorn: answers every request with its colour.

    python3 docs/examples/colour_app.py green 5000
    python3 docs/examples/colour_app.py blue 5001

GET /health answers 200 "ok", so Switchyard's health checks see it as up.
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COLOUR = sys.argv[1] if len(sys.argv) > 1 else "green"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 5000


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Colour", COLOUR)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's naming)
        if self.path == "/health":
            self.answer(b"ok\n")
        else:
            self.answer(f"hello from {COLOUR}\n".encode())

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        self.answer(self.rfile.read(length))

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    print(f"{COLOUR} app on 127.0.0.1:{PORT}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
