"""hello-python: the smallest web service dployr can deploy.

Listens on $PORT (set by dployr for each release), answers / with a
greeting and /healthz with "ok" (the blueprint's health check). Standard
library only, so there is nothing to build.
"""
import http.server
import os
import socket

GREETING = os.environ.get("GREETING", "hello")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, "ok\n")
        elif self.path == "/":
            self.reply(200, "%s (host %s, pid %d)\n" % (GREETING, socket.gethostname(), os.getpid()))
        else:
            self.reply(404, "not found\n")

    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print("%s %s" % (self.address_string(), fmt % args), flush=True)


def main():
    port = int(os.environ.get("PORT", "8080"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("listening on 127.0.0.1:%d" % port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
