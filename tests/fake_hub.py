"""A Hugging Face Hub stand-in on a loopback port, for upload tests without network.

It answers the few endpoints ``huggingface_hub``'s HfApi calls to create a repository and a branch, check a file
and commit (``/api/repos/create``, ``/api/models/<repo>/branch/<b>``, ``HEAD /<repo>/resolve/<rev>/<file>``,
``/api/models/<repo>/preupload/<rev>``, ``/api/models/<repo>/commit/<rev>``), stores every committed file per
(repository, revision), and tells every file to be uploaded inline (no LFS), as the Hub does for small files.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeHub:
    def __init__(self) -> None:
        self.files: dict[tuple[str, str], dict[str, bytes]] = {}  # (repo, revision) -> path -> content
        self.commits: list[dict[str, Any]] = []
        self.branches: set[tuple[str, str]] = set()
        self.created: list[dict[str, Any]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                repo, _, rest = self.path.lstrip("/").partition("/resolve/")
                revision, _, filename = rest.partition("/")
                content = hub.files.get((repo, revision), {}).get(filename)
                if content is None:
                    self._reply(404, None, {"X-Error-Code": "EntryNotFound"})
                else:
                    self._reply(200, None, {"ETag": '"x"', "X-Repo-Commit": "a" * 40,
                                            "Content-Length": str(len(content))})

            def do_GET(self) -> None:  # noqa: N802
                self._reply(404, {"error": "not found"}, {"X-Error-Code": "EntryNotFound"})

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                host = self.headers["Host"]
                path, _, query = self.path.partition("?")
                if path == "/api/validate-yaml":  # the Hub checks a README's metadata before a commit
                    self._reply(200, {"errors": [], "warnings": []})
                elif path == "/api/repos/create":
                    request = json.loads(body)
                    hub.created.append(request)
                    owner = request.get("organization") or "me"
                    self._reply(200, {"url": f"http://{host}/{owner}/{request['name']}"})
                elif "/branch/" in path:
                    repo, _, branch = path.removeprefix("/api/models/").partition("/branch/")
                    hub.branches.add((repo, branch))
                    self._reply(200, {})
                elif "/preupload/" in path:
                    files = json.loads(body)["files"]
                    self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                for f in files]})
                elif "/commit/" in path:
                    repo, _, revision = path.removeprefix("/api/models/").partition("/commit/")
                    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                    header = next(line["value"] for line in lines if line["key"] == "header")
                    stored = hub.files.setdefault((repo, revision), {})
                    paths = []
                    for line in lines:
                        if line["key"] == "file":
                            stored[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
                            paths.append(line["value"]["path"])
                    create_pr = "create_pr=1" in query
                    hub.commits.append({"repo": repo, "revision": revision, "paths": paths, "create_pr": create_pr,
                                        **header})
                    reply = {"commitUrl": f"http://{host}/{repo}/commit/{'b' * 40}", "commitOid": "b" * 40}
                    if create_pr:
                        reply["pullRequestUrl"] = f"http://{host}/{repo}/discussions/1"
                    self._reply(200, reply)
                else:
                    self._reply(404, {"error": f"unknown endpoint {path}"})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
