"""Python's http.server (the standard library's SimpleHTTPRequestHandler, unchanged) with a log that
names no request path: the lab serves the canary patient's folder, and the lab's logs hold no patient
value. `python -m http.server` itself logs every request line.

Run: python -m phiwatch_lab.pyhttp --bind HOST --directory DIR PORT
"""

from __future__ import annotations

import argparse
import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(SimpleHTTPRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        method = getattr(self, "command", None) or ""
        self.log_message('"%s" %s', method if method.isalpha() and len(method) <= 16 else "-", code)

    def log_error(self, format: str, *args: Any) -> None:  # its messages may quote the request line
        self.log_message("request refused: %s", args[0] if args and isinstance(args[0], int) else "-")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m phiwatch_lab.pyhttp")
    parser.add_argument("--bind", required=True)
    parser.add_argument("--directory", required=True)
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    handler = functools.partial(QuietHandler, directory=args.directory)
    with ThreadingHTTPServer((args.bind, args.port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
