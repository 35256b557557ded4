"""``dl serve``: run the exact Lambda package of each instance locally, the way Lambda runs it.

For each instance: build the package for this machine (``build_package(target="host")``), unpack it, and start
a :class:`dl.local.worker.Worker` on it: an isolated interpreter running the package's handler, the stand-in
for one Lambda sandbox (see ``dl/local/worker.py``, which also turns requests into Function URL events).

A small HTTP server on 127.0.0.1 (one port per instance, consecutive from ``--port``: :class:`InstanceServer`)
passes every request to its instance's current worker as a Lambda Function URL event and sends back the
handler's answer; a worker that crashed or outlived the instance's timeout (502) is replaced by a fresh one.

Databases the builder leaves for S3 (too large to inline) are linked into the worker's fetch folder under the
name a verified fetch would have, so the runtime finds them as after a cold-start fetch and never calls S3.

A watcher (:meth:`Serve.reload_if_changed`) polls the manifest, the databases and metadata files; on a change
the instance is rebuilt and its worker replaced (a failed build keeps the old one and prints why). The command
itself is ``dl/commands/serve.py``.
"""

from __future__ import annotations

import dataclasses
import http.server
import os
import secrets
import shutil
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import click

from dl.commands.options import load, select_instances
from dl.errors import DlError
from dl.local.worker import Worker, WorkerError, request_event, response_parts
from dl.manifest.model import Instance, Manifest

LAMBDA_REQUEST_LIMIT = 6 * 1024 * 1024  # bytes: Lambda's synchronous invocation payload limit
FAKE_FUNCTION_HOST = "{name}.lambda-url.local.on.aws"  # the Host a Function URL event carries

Log = Callable[[str], None]


# --- one instance: an HTTP server and its current worker ---------------------------------------------------------


@dataclasses.dataclass
class Build:
    """An unpacked package ready to run."""

    root: Path  # the unpacked zip (Lambda's task root)
    fetch_dir: Path  # stands in for /tmp/dl-databases
    python: Path
    sha256: str


class InstanceServer:
    """Serves one instance on its own port through its current worker."""

    def __init__(self, name: str, host: str, port: int, log: Log):
        self.name = name
        self.log = log
        self.worker: Worker | None = None
        self.build: Build | None = None
        self._swap = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer((host, port), _request_handler(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.host = host
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.function_host = FAKE_FUNCTION_HOST.format(name=_host_label(name))

    def url(self, prefix: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{prefix}"

    def start(self) -> None:
        self._thread.start()

    def replace_worker(self, worker: Worker, build: Build) -> None:
        """Put a started worker in service and stop the previous one."""
        with self._swap:
            old, old_build = self.worker, self.build
            self.worker, self.build = worker, build
        if old:
            old.stop()
        if old_build:
            shutil.rmtree(old_build.root.parent, ignore_errors=True)

    def handle(self, method: str, target: str, headers, body: bytes, client_ip: str):
        """One HTTP request -> (status, headers, body)."""
        if len(body) > LAMBDA_REQUEST_LIMIT:
            return _plain(413, "413 Request too large for AWS Lambda (6 MB).\n")
        if self.worker is not None and not self.worker.alive:
            self._restart(self.worker)  # it crashed between requests: a new sandbox
        worker = self.worker
        if worker is None:
            return _plain(503, "503: the instance is not built yet.\n")
        event = request_event(method, target, headers, body, client_ip, self.function_host)
        try:
            return response_parts(worker.invoke(event))
        except WorkerError as e:
            self.log(f"error: {e}")
            if not worker.alive:
                self._restart(worker)
            return _plain(502, f"502 Bad Gateway: {str(e).splitlines()[0]}\n")

    def _restart(self, dead: Worker) -> None:
        """A worker that crashed or timed out is replaced by a fresh one on the same build (a new sandbox)."""
        with self._swap:
            if self.worker is not dead:
                return
            fresh = Worker(dead.root, dead.python, dead.env, dead.timeout, dead.log)
            try:
                fresh.start()
            except DlError as e:
                self.log(f"error: {e}")
                return
            self.worker = fresh

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.worker:
            self.worker.stop()
        if self.build:
            shutil.rmtree(self.build.root.parent, ignore_errors=True)


def _plain(status: int, text: str):
    return status, [("content-type", "text/plain; charset=utf-8")], text.encode()


def _host_label(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "instance"


def _request_handler(server: InstanceServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "dl-serve"

        def _serve(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, data = server.handle(
                self.command, self.path, list(self.headers.items()), body, self.client_address[0]
            )
            self.send_response_only(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

        def log_message(self, format, *args):  # the handler's own log line says it all
            pass

    return Handler


# --- building and running -----------------------------------------------------------------------------------------


def host_instance(instance: Instance, log: Log) -> Instance:
    """The instance to build for this machine: its runtime's Python if installed, else this interpreter's."""
    from dl.build.dependencies import find_interpreter

    if find_interpreter(instance.python_version) is not None:
        return instance
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    log(
        f"warning: no python{instance.python_version} on this machine (instance runtime {instance.runtime}); "
        f"serving with python{mine} instead"
    )
    return dataclasses.replace(instance, runtime=f"python{mine}")


def build_for_serve(instance: Instance, workdir: Path, log: Log, build_package=None) -> Build:
    """Build the host package of ``instance`` and unpack it under a fresh folder of ``workdir``."""
    if build_package is None:
        from dl.build.package import build_package
    instance = host_instance(instance, log)
    place = Path(tempfile.mkdtemp(prefix=f"{instance.name}-", dir=workdir))
    zip_path = place / "package.zip"
    result = build_package(instance, zip_path, target="host", log=log)
    root = place / "task"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root)
    zip_path.unlink()
    fetch_dir = place / "fetched"
    fetch_dir.mkdir()
    for db in result.s3:  # as after a verified cold-start fetch: the runtime finds them and skips S3
        (fetch_dir / f"{db.sha256}.db").symlink_to(Path(db.source).resolve())
    python = result.python or Path(sys.executable)
    return Build(root=root, fetch_dir=fetch_dir, python=python, sha256=result.sha256)


def worker_environment(instance: Instance, build: Build, secret: str) -> dict[str, str]:
    """What Lambda would set (plus the runtime's own variables); nothing else of the tool's environment."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "HOME": str(build.root.parent),
        "LAMBDA_TASK_ROOT": str(build.root),
        "AWS_LAMBDA_FUNCTION_NAME": instance.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(instance.memory),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(instance.timeout),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{instance.runtime}",
        "DL_FETCH_DIR": str(build.fetch_dir),
        "DL_DIRECT_RESPONSES": "1",  # no bucket here: responses Lambda sends through S3 are served directly
        "DATASETTE_SECRET": secret,
    }
    for name, source in instance.secrets.items():
        if source in os.environ:
            env[name] = os.environ[source]
    return env


class Serve:
    """``dl serve`` as an object: start(), urls, reload_if_changed(), stop(). The CLI adds the loop."""

    def __init__(
        self,
        manifest_path: str,
        names: tuple[str, ...] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 8001,
        allow_outside_paths: bool = False,
        log: Log = click.echo,
        function_log: Callable[[str], Log] | None = None,
    ):
        """``function_log(instance)``: where else a new worker's output goes (CloudWatch, with --sandbox)."""
        self.function_log = function_log
        self.manifest_path = manifest_path
        self.allow_outside_paths = allow_outside_paths
        self.log = log
        self.manifest: Manifest = load(manifest_path, allow_outside_paths)
        self.names = select_instances(self.manifest, names)
        self.workdir = Path(tempfile.mkdtemp(prefix="dl-serve-"))
        self.secret = secrets.token_hex(32)  # one per session: signed cookies survive reloads
        self.servers: dict[str, InstanceServer] = {}
        self._stamps = {}
        try:
            for offset, name in enumerate(self.names):
                self.servers[name] = InstanceServer(
                    name, host, port + offset if port else 0, self._logger(name)
                )
        except OSError as e:
            self.stop()
            raise DlError(f"cannot listen on {host}:{port + len(self.servers)}: {e.strerror or e}") from None

    def _logger(self, name: str) -> Log:
        return lambda line: self.log(f"[{name}] {line}")

    @property
    def urls(self) -> dict[str, str]:
        """{instance: URL including its prefix}."""
        return {name: s.url(self.manifest.instances[name].prefix) for name, s in self.servers.items()}

    def start(self) -> None:
        """Build and start every instance, then listen."""
        self._stamps = self._file_stamps()
        for name, server in self.servers.items():
            self._deploy(name, self.manifest.instances[name])
            server.start()

    def _deploy(self, name: str, instance: Instance) -> None:
        server = self.servers[name]
        build = build_for_serve(instance, self.workdir, server.log)
        env = worker_environment(instance, build, self.secret)
        log = server.log
        if self.function_log is not None:
            from dl.local.log_sink import tee

            log = tee(server.log, self.function_log(name))
        worker = Worker(build.root, build.python, env, float(instance.timeout), log)
        try:
            worker.start()
        except DlError:
            shutil.rmtree(build.root.parent, ignore_errors=True)
            raise
        server.replace_worker(worker, build)

    def _watched_files(self) -> list[Path]:
        files = [Path(self.manifest.path)]
        for name in self.names:
            instance = self.manifest.instances[name]
            files += [db.path for db in instance.databases]
            if instance.metadata_source:
                files.append(Path(self.manifest.path).parent / instance.metadata_source)
        return files

    def _file_stamps(self) -> dict[Path, tuple]:
        stamps = {}
        for path in self._watched_files():
            try:
                st = path.stat()
                stamps[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                stamps[path] = None
        return stamps

    def reload_if_changed(self) -> bool:
        """Rebuild the instances if a watched file changed; True when something was reloaded."""
        stamps = self._file_stamps()
        if stamps == self._stamps:
            return False
        changed = sorted(
            str(p) for p in set(stamps) | set(self._stamps) if stamps.get(p) != self._stamps.get(p)
        )
        self._stamps = stamps
        self.log(f"change detected ({', '.join(changed) or 'manifest'}): reloading")
        try:
            manifest = load(self.manifest_path, self.allow_outside_paths)
            for name in self.names:
                if name not in manifest.instances:
                    raise DlError(f"instance {name!r} is no longer in the manifest")
            for name in self.names:
                self._deploy(name, manifest.instances[name])
        except DlError as e:
            self.log(f"reload failed, still serving the previous build:\n{e}")
            return False
        self.manifest = manifest
        self._stamps = self._file_stamps()  # the manifest may name new files
        for name, url in self.urls.items():
            self.log(f"{name}: {url} (reloaded)")
        return True

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
