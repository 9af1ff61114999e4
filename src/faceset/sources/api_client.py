"""A small HTTP client for library servers: JSON calls and file downloads, retried with backoff.

Built on the standard library so API sources need no extra dependency. Errors that stop the run
(bad credentials, unreachable server, untrusted certificate) become one-line SourceErrors;
per-file download failures raise :class:`DownloadFailed`, which callers turn into a skipped face.
"""

from __future__ import annotations

import email.message
import http.client
import json
import logging
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from faceset.errors import SourceError

log = logging.getLogger(__name__)

# Statuses worth another try: the server is busy, restarting or behind a proxy that timed out.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
CHUNK = 1 << 20
USER_AGENT = "faceset (+read-only face export)"


class NotFound(SourceError):
    """The server answered 404 for a path that should exist."""


class Unauthorized(SourceError):
    """The server refused the credentials (401)."""


class Forbidden(SourceError):
    """The credentials are valid but lack a permission (403)."""


class Refused(SourceError):
    """The server refused a call with a status no retry can fix (400, 422, ...)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DownloadFailed(Exception):
    """One file could not be downloaded intact; the run goes on without it."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: email.message.Message
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would follow a redirect with our Authorization header to any host; refuse instead
    # and tell the user the address to use.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class ApiClient:
    """Calls one server under ``base_url`` with fixed headers (the credentials).

    ``service`` names the server in messages; ``auth_hint`` tells the user how to fix a 401.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        service: str,
        auth_hint: str,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        ca_file: Path | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SourceError(f"{base_url!r} is not a server address; use http://host:port")
        self.base_url = base_url.rstrip("/")
        self.headers = {"User-Agent": USER_AGENT, **headers}
        self.service = service
        self.auth_hint = auth_hint
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        context = ssl.create_default_context()
        if ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as e:
                raise SourceError(f"cannot read the CA certificate {ca_file}: {e}") from None
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _NoRedirect()
        )

    @property
    def where(self) -> str:
        return f"{self.service} at {self.base_url}"

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = f"?{urllib.parse.urlencode(params, doseq=True)}" if params else ""
        return f"{self.base_url}/{path.lstrip('/')}{query}"

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """Return the decoded JSON of a GET; raise SourceError (NotFound for 404)."""
        return self.json_of(path, self.request("GET", path, params))

    def post_json(self, path: str, body: Any) -> Any:
        """Return the decoded JSON of a POST carrying ``body`` (searches; never a write)."""
        return self.json_of(path, self.request("POST", path, body=body))

    def json_of(self, path: str, response: Response) -> Any:
        """Return the decoded JSON body of ``response``; raise SourceError when it is not JSON."""
        try:
            return json.loads(response.body)
        except ValueError:
            raise SourceError(
                f"{self.where} answered {path} with something other than JSON;"
                f" is the address that of {self.service}?"
            ) from None

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Response:
        """Return the response of one call, retried on timeouts and busy statuses.

        Raises SourceError for a refused login, an unreachable server or a failed call.
        """
        url = self.url(path, params)
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with self._opener.open(request, timeout=self.timeout) as resp:
                    return Response(resp.status, resp.headers, resp.read())
            except urllib.error.HTTPError as e:
                self._raise_for_status(e.code, path, e.headers)
                if attempt == self.retries:
                    raise SourceError(
                        f"{self.where} failed on {path}: HTTP {e.code} after {attempt + 1} tries"
                    ) from None
                self._wait(attempt, e.headers)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                self._raise_if_fatal(e)
                if attempt == self.retries:
                    raise SourceError(self._unreachable(e, attempt + 1)) from None
                self._wait(attempt, None)
        raise AssertionError("unreachable")

    def download(self, path: str, params: Mapping[str, Any] | None, dest: Path) -> None:
        """Stream one file to ``dest``; raise DownloadFailed when it does not arrive whole.

        A 401 or 403 still raises SourceError: a download token that stopped working stops the run.
        """
        url = self.url(path, params)
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._wait(attempt - 1, None)
            request = urllib.request.Request(url, headers=self.headers, method="GET")
            try:
                with self._opener.open(request, timeout=self.timeout) as resp:
                    expected = resp.headers.get("Content-Length")
                    with dest.open("wb") as out:
                        received = _copy(resp, out)
                if expected is not None and expected.isdigit() and received != int(expected):
                    problem = f"download cut short ({received} of {expected} bytes)"
                    continue
                return
            except urllib.error.HTTPError as e:
                self._raise_for_status(e.code, path, e.headers, download=True)
                problem = f"HTTP {e.code}"
                if e.code not in RETRY_STATUSES:
                    break
            except http.client.IncompleteRead as e:
                problem = f"download cut short ({len(e.partial)} bytes, then the connection closed)"
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                self._raise_if_fatal(e)
                problem = _reason(e)
        dest.unlink(missing_ok=True)
        raise DownloadFailed(problem or "download failed")

    def _raise_for_status(
        self,
        status: int,
        path: str,
        headers: email.message.Message | None,
        *,
        download: bool = False,
    ) -> None:
        """Raise SourceError for statuses that no retry can fix; return for retryable ones."""
        if 300 <= status < 400:
            target = headers.get("Location", "") if headers else ""
            raise SourceError(
                f"{self.where} redirects to {target or 'another address'}; use that address"
            )
        if status == 401:
            raise Unauthorized(f"{self.where} refused the credentials (401); {self.auth_hint}")
        if status == 403:
            raise Forbidden(
                f"{self.where} denied {path} (403): the credentials lack a permission;"
                f" {self.auth_hint}"
            )
        if status == 404 and not download:
            raise NotFound(f"{self.where} has no {path} (404)")
        if status not in RETRY_STATUSES and not download:
            raise Refused(f"{self.where} refused {path}: HTTP {status}", status)

    def _raise_if_fatal(self, error: BaseException) -> None:
        cause = getattr(error, "reason", error)
        if isinstance(cause, ssl.SSLCertVerificationError):
            raise SourceError(
                f"cannot verify the HTTPS certificate of {self.base_url}"
                f" ({cause.verify_message}); pass the server's CA certificate as ca_file"
            ) from None
        if isinstance(cause, socket.gaierror):
            host = urllib.parse.urlsplit(self.base_url).hostname
            raise SourceError(f"cannot reach {self.where}: no host named {host!r}") from None

    def _unreachable(self, error: BaseException, tries: int) -> str:
        cause = getattr(error, "reason", error)
        if isinstance(cause, TimeoutError | socket.timeout):
            return f"{self.where} did not answer within {self.timeout:g} s ({tries} tries)"
        return (
            f"cannot reach {self.where}: {_reason(error)}; is the server running and the address"
            " right?"
        )

    def _wait(self, attempt: int, headers: email.message.Message | None) -> None:
        delay = self.backoff * 2**attempt
        retry_after = headers.get("Retry-After") if headers else None
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 60.0))
        log.debug("%s: retrying in %.1f s", self.where, delay)
        time.sleep(delay)


def _copy(source: Any, out: IO[bytes]) -> int:
    received = 0
    while chunk := source.read(CHUNK):
        out.write(chunk)
        received += len(chunk)
    return received


def _reason(error: BaseException) -> str:
    cause = getattr(error, "reason", error)
    if isinstance(cause, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return str(cause) or type(cause).__name__
