"""A sample Python app with no dependencies: the standard library's HTTP server."""
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from python {sys.version_info.major}.{sys.version_info.minor} in {os.environ.get('VIRTUAL_ENV', 'no venv')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    print(f"listening on {port}", flush=True)
    HTTPServer(("", port), Handler).serve_forever()
