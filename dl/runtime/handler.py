"""The Lambda entry point: ``dl_runtime.handler.handler(event, context)``.

The instance is read and Datasette built at import (Lambda's init phase), so warm invocations reuse both;
Datasette's first-request work (plugins' ``startup`` hooks, table counts, its schema tables) is done then
too, on the event loop Mangum runs requests on. When databases must first be fetched from S3, Datasette is
built on the first request that gets them all (a fetch that fails answers 503 and is retried by the next
request).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
import warnings
from pathlib import Path

from mangum import Mangum

from . import links
from .app import build_datasette
from .fetch import fetch_databases, presigned_download_url, s3_client
from .gateway import TEXT_MIME_TYPES, Gateway
from .instance import load_instance
from .large_responses import LargeResponses
from .marshalling import LAMBDA_RESPONSE_LIMIT, escapes_non_ascii, posted_size
from .settings import RuntimeSettings


class Runtime:
    """One instance served through Mangum: the handler's state, built once per sandbox."""

    def __init__(self, settings: RuntimeSettings, log=None, datasette=None):
        """``datasette``: serve this Datasette object instead of building one from the instance's databases
        (Datasette's own test suite does, through ``harness/datasette_suite``); it gets the prefix as its
        ``base_url``, as ``build_datasette`` gives it."""
        self.settings = settings
        self.spec = load_instance(settings.instance_dir)
        self.datasette = None  # the Datasette object, once built
        self._asgi = None
        self._lock = threading.Lock()
        self._s3 = None
        presign = self._presign if settings.artifact_bucket else None
        self.ensure_ascii = escapes_non_ascii(settings.execution_env)
        self.gateway = Gateway(
            self.spec,
            self.datasette_app,
            origin_secret=settings.origin_secret,
            presign=presign,
            log=log,
            ensure_ascii=self.ensure_ascii,
            large_responses=LargeResponses(settings.artifact_bucket, self._client)
            if settings.artifact_bucket
            else None,
            response_limit=settings.response_limit or LAMBDA_RESPONSE_LIMIT,
            answer_seconds=settings.answer_seconds,
            direct=settings.direct_responses,
        )
        self.mangum = Mangum(self.gateway, lifespan="off", text_mime_types=list(TEXT_MIME_TYPES))
        if datasette is not None:
            links.install()
            if self.spec.prefix != "/":
                datasette._settings["base_url"] = self.spec.prefix
            self.datasette, self._asgi = datasette, datasette.app()
        elif all(db.inline for db in self.spec.databases):
            self.datasette_app()
            self.warm_up()

    def __call__(self, event, context):
        response = self.mangum(event, context)
        if self.settings.direct_responses:
            return response  # dl serve: served whatever the size (the gateway logged it)
        if _may_exceed(response) and posted_size(response, self.ensure_ascii) > LAMBDA_RESPONSE_LIMIT:
            return {
                "statusCode": 413,
                "headers": {"content-type": "text/plain; charset=utf-8"},
                "body": self.gateway.too_large_text(),
                "isBase64Encoded": False,
            }
        return response

    def datasette_app(self):
        """Datasette's ASGI app, built on first use once every database is local (may raise FetchError)."""
        with self._lock:
            if self._asgi is None:
                paths = self._database_paths()
                self.datasette = build_datasette(self.spec, paths, self.settings.secret)
                self._asgi = self.datasette.app()
            return self._asgi

    def warm_up(self) -> bool:
        """Run Datasette's first-request work now; on failure log it and leave it to the first request."""
        try:
            _event_loop().run_until_complete(_warm(self.datasette))
            return True
        except Exception:
            sys.stderr.write("warm-up failed (the first request will retry it):\n" + traceback.format_exc())
            return False

    def _database_paths(self) -> dict[str, Path]:
        remote = [db for db in self.spec.databases if not db.inline]
        fetched = fetch_databases(
            remote, self.settings.artifact_bucket, self.settings.fetch_dir, self._client
        )
        local = {db.name: self.spec.inline_path(db) for db in self.spec.databases if db.inline}
        return {db.name: local.get(db.name) or fetched[db.name] for db in self.spec.databases}

    def _client(self):
        if self._s3 is None:
            self._s3 = s3_client()
        return self._s3

    def _presign(self, key: str, filename: str) -> str:
        return presigned_download_url(self._client(), self.settings.artifact_bucket, key, filename)


def _may_exceed(response: dict) -> bool:
    """Whether the response might exceed Lambda's limit (each character is at most 6 bytes, escaped)."""
    rest = {key: value for key, value in response.items() if key != "body"}
    return 6 * (len(response.get("body") or "") + len(str(rest))) > LAMBDA_RESPONSE_LIMIT


async def _warm(ds) -> None:
    """What Datasette's app does on its first request (``setup_db``, ``invoke_startup``) and every request
    (``refresh_schemas``); each is done once, so the first request finds it done."""
    for database in ds.databases.values():
        if not database.is_mutable:
            await database.table_counts(limit=60 * 60 * 1000)
    await ds.invoke_startup()
    await ds.refresh_schemas()


def _event_loop() -> asyncio.AbstractEventLoop:
    """The main thread's event loop, the one Mangum runs every request on (``asyncio.get_event_loop()``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: no current loop yet
        try:
            return asyncio.get_event_loop()
        except RuntimeError:  # 3.14+: none is created implicitly
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            return loop


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The sandbox's Runtime, created on first use from the environment."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(RuntimeSettings.from_environ())
    return _runtime


def handler(event, context):
    """AWS Lambda handler: Function URL / HTTP API (payload 2.0) and API Gateway REST (1.0) events."""
    return runtime()(event, context)


# In a package (instance.json present) do the work during Lambda's init phase, not the first request.
if (RuntimeSettings.from_environ().instance_dir / "instance.json").exists():
    runtime()
