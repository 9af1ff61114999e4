"""Local HTTP servers that answer like PhotoPrism's and Immich's APIs, with failures on demand.

Each runs ``http.server`` in a thread on 127.0.0.1. Responses use the field names and paging of
the real APIs (../shared/reference/photoprism.md section 8, other-libraries.md section 1). A test
queues faults per path: a status, a delay, or a download cut short.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Fault:
    """What to do instead of (or before) answering one request."""

    status: int = 0
    """Answer with this status and a JSON error body."""
    delay: float = 0.0
    """Wait this long before answering normally."""
    truncate: bool = False
    """Send the headers for the whole body, then half of it, then close."""
    body: bytes | None = None
    """Answer 200 with these bytes instead."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def reply_json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(value).encode(), headers or {})


class FakeServer:
    """A server in a thread; subclasses answer :meth:`handle`. ``url`` is its address."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.requests: list[Request] = []
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                server._dispatch(self)

            do_GET = do_POST = do_DELETE = do_PUT = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, path: str, *faults: Fault) -> None:
        """Queue faults for the next requests to ``path`` (without the query)."""
        with self.lock:
            self.faults[path].extend(faults)

    def calls(self, prefix: str = "", method: str | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if r.path.startswith(prefix) and (method is None or r.method == method)
        ]

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        request = Request(
            handler.command,
            parts.path,
            urllib.parse.parse_qs(parts.query),
            {k.lower(): v for k, v in handler.headers.items()},
            json.loads(raw) if raw else None,
        )
        with self.lock:
            self.requests.append(request)
            queued = self.faults.get(parts.path)
            fault = queued.pop(0) if queued else None
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.status:
            reply = reply_json({"error": "fault"}, fault.status)
        elif fault and fault.body is not None:
            reply = Reply(200, fault.body, content_type="application/octet-stream")
        else:
            reply = self.handle(request)
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", reply.content_type)
            handler.send_header("Content-Length", str(len(reply.body)))
            for k, v in reply.headers.items():
                handler.send_header(k, v)
            if fault and fault.truncate:
                handler.send_header("Connection", "close")
                handler.end_headers()
                handler.wfile.write(reply.body[: len(reply.body) // 2])
                handler.wfile.flush()
                handler.close_connection = True
                return
            handler.end_headers()
            handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)


class PhotoPrismServer(FakeServer):
    """PhotoPrism's /api/v1: session, subjects, photos (merged, paged by files), dl, markers."""

    TOKEN = "OXiV72-wTtiL9-d04jO7-X7XP4p"
    DOWNLOAD_TOKEN = "dl0a1b2c3d"

    def __init__(self, state: dict[str, Any], tls: tuple[Path, Path] | None = None) -> None:
        self.state = state
        self.session = True
        super().__init__(tls)

    def handle(self, r: Request) -> Reply:
        if r.path.startswith("/api/v1/dl/"):
            if r.query.get("t") != [self.DOWNLOAD_TOKEN]:
                return reply_json({"error": "Permission denied"}, 403)
            blob = self.state["blobs"].get(r.path.rsplit("/", 1)[1])
            if blob is None:
                return reply_json({"error": "File not found"}, 404)
            return Reply(200, blob, content_type="image/jpeg")
        if r.headers.get("authorization") != f"Bearer {self.TOKEN}":
            return reply_json({"error": "Unauthorized"}, 401)
        if r.path == "/api/v1/session" and r.method == "GET" and self.session:
            config = {"version": "240915-e1280b2fb", "downloadToken": self.DOWNLOAD_TOKEN,
                      "previewToken": "pv1"}  # fmt: skip
            return reply_json({"id": "sess1", "config": config, "user": {"Name": "admin"}})
        if r.path == "/api/v1/subjects" and "subjects" in self.state:
            count, offset = int(r.query["count"][0]), int(r.query.get("offset", ["0"])[0])
            return reply_json(self.state["subjects"][offset : offset + count])
        if r.path == "/api/v1/photos":
            return self._photos(r)
        if r.path.startswith("/api/v1/markers/") and r.method == "DELETE":
            return reply_json({"UID": r.path.split("/")[4], "SubjUID": ""})
        return reply_json({"error": "Not found"}, 404)

    def _photos(self, r: Request) -> Reply:
        # PhotoPrism pages the joined photo-file rows, then merges files into their photos.
        count, offset = int(r.query["count"][0]), int(r.query.get("offset", ["0"])[0])
        subject = r.query.get("q", [""])[0].removeprefix("subject:")
        archived = r.query.get("archived") == ["true"]
        rows = [
            (photo, file)
            for photo in self.state["photos"]
            if bool(photo.get("Archived")) == archived
            and any(
                m.get("SubjUID") == subject for f in photo["Files"] for m in f.get("Markers") or []
            )
            for file in photo["Files"]
        ]
        merged: dict[str, dict[str, Any]] = {}
        for photo, file in rows[offset : offset + count]:
            entry = merged.setdefault(photo["UID"], {**photo, "Files": []})
            entry["Files"].append(file)
        return reply_json(list(merged.values()), headers={"X-Download-Token": self.DOWNLOAD_TOKEN})


class ImmichServer(FakeServer):
    """Immich's /api: server/version, people, search/metadata, faces, assets/{id}/original."""

    KEY = "immich-api-key-0123456789"

    def __init__(self, state: dict[str, Any], version: tuple[int, int, int] = (1, 135, 3)) -> None:
        self.state = state
        self.version = version
        super().__init__()

    def handle(self, r: Request) -> Reply:
        if r.path == "/api/server/version":
            major, minor, patch = self.version
            return reply_json({"major": major, "minor": minor, "patch": patch})
        if r.headers.get("x-api-key") != self.KEY:
            return reply_json({"message": "Invalid API key", "statusCode": 401}, 401)
        if r.path == "/api/people":
            page, size = int(r.query["page"][0]), int(r.query["size"][0])
            people = self.state["people"]
            chunk = people[(page - 1) * size : page * size]
            return reply_json({"total": len(people), "hidden": 0, "people": chunk,
                               "hasNextPage": page * size < len(people)})  # fmt: skip
        if r.path.startswith("/api/people/") and r.path.endswith("/statistics"):
            pid = r.path.split("/")[3]
            n = sum(1 for a in self._assets_of(pid))
            return reply_json({"assets": n})
        if r.path == "/api/search/metadata" and r.method == "POST":
            return self._search(r.body)
        if r.path == "/api/faces":
            return reply_json(self.state["faces"].get(r.query["id"][0], []))
        if r.path.startswith("/api/assets/"):
            aid, kind = r.path.split("/")[3:5]
            if kind == "original":
                key = "edited" if r.query.get("edited") == ["true"] else "blobs"
                blob = self.state.get(key, {}).get(aid)
            else:
                blob = self.state.get("previews", {}).get(aid)
            if blob is None:
                return reply_json({"message": "Not found"}, 404)
            return Reply(200, blob, content_type="image/jpeg")
        return reply_json({"message": "Cannot GET " + r.path}, 404)

    def _assets_of(self, pid: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.state["assets"]
            if any((f.get("person") or {}).get("id") == pid for f in self.state["faces"][a["id"]])
        ]

    def _search(self, body: dict[str, Any]) -> Reply:
        # 1.133 replaced the archive flag by a visibility; each version refuses the other's field.
        if "withArchived" in body and self.version[:2] >= (1, 133):
            return reply_json({"message": ["property withArchived should not exist"]}, 400)
        if "visibility" in body and self.version[:2] < (1, 133):
            return reply_json({"message": ["property visibility should not exist"]}, 400)
        wanted = body.get("visibility")
        found = []
        for pid in body.get("personIds", []):
            for a in self._assets_of(pid):
                visibility = a.get("visibility", "timeline")
                if a.get("isTrashed"):
                    continue
                if wanted and visibility != wanted:
                    continue
                if not wanted and visibility not in ("timeline", "archive"):
                    continue
                found.append(a)
        page, size = int(body.get("page", 1)), int(body.get("size", 250))
        items = found[(page - 1) * size : page * size]
        next_page = str(page + 1) if page * size < len(found) else None
        return reply_json({
            "albums": {"total": 0, "count": 0, "items": [], "facets": []},
            "assets": {"total": len(items), "count": len(items), "items": items, "facets": [],
                       "nextPage": next_page},
        })  # fmt: skip
