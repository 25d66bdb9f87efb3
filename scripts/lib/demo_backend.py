#!/usr/bin/env python3
"""A tiny HTTP backend for `scripts/run --demo`: answers every request with its own name."""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {self.server.name}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # health checks hang up as soon as they have the status line

    def log_message(self, *args):
        pass


def main():
    name, port = sys.argv[1], int(sys.argv[2])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.name = name
    server.serve_forever()


if __name__ == "__main__":
    main()
