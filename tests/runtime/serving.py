"""Driving a real `dl serve` over real HTTP: start it, read what it prints, make requests, stop it."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 240  # seconds: a cold dependency cache means a pip install


def make_shop_db(path: Path, items: int = 23) -> Path:
    """A database with what Datasette shows off: a foreign key, facetable columns, a view, a blob."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("create table owners (id integer primary key, name text)")
        conn.executemany("insert into owners (name) values (?)", [("ada",), ("bob",), ("cy",)])
        conn.execute(
            "create table items (id integer primary key, name text, category text, value real, "
            "owner_id integer references owners(id), picture blob)"
        )
        conn.executemany(
            "insert into items (name, category, value, owner_id, picture) values (?, ?, ?, ?, ?)",
            [(f"item {i}", "abc"[i % 3], i * 1.5, 1 + i % 3, bytes([i, 0, 255])) for i in range(items)],
        )
        conn.execute("create view cheap_items as select id, name, value from items where value < 10")
    conn.close()
    return path


def make_tagged_db(path: Path) -> Path:
    """A database whose facets Datasette links from the request path (a JSON array column, dates), and a
    table whose CSV export is larger than Lambda's response limit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("create table posts (id integer primary key, title text, tags text, created text)")
        conn.executemany(
            "insert into posts (title, tags, created) values (?, ?, ?)",
            [
                (f"post {i}", json.dumps(["tag" + str(i % 3), "all"]), f"2024-0{1 + i % 3}-1{i % 9} 10:00:00")
                for i in range(12)
            ],
        )
        conn.execute("create table readings (id integer primary key, station text, note text)")
        conn.executemany(  # 90,000 rows of about 100 bytes: a 9 MB CSV export
            "insert into readings (station, note) values (?, ?)",
            [(f"station-{i % 40}", f"reading {i} " + "~" * 64 + " ünïcode") for i in range(90_000)],
        )
    conn.close()
    return path


@dataclass
class ServeProcess:
    """A running `dl serve` and everything it printed."""

    proc: subprocess.Popen
    urls: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue = field(default_factory=queue.Queue)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first new output line matching ``pattern`` (fails the test on timeout or exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if match := re.search(pattern, line):
                return match
        output = "\n".join(self.lines[-60:])
        raise AssertionError(f"dl serve never printed {pattern!r}; its output:\n{output}")

    def log_since(self, count: int) -> list[str]:
        return self.lines[count:]


def start_serve(manifest: Path, *args: str, env: dict | None = None) -> ServeProcess:
    """Start `dl serve --port 0` on ``manifest`` and wait until it serves; returns its URLs by instance."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dl", "serve", "-f", str(manifest), "--port", "0", *args],
        cwd=manifest.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)},
    )
    served = ServeProcess(proc)

    def pump():
        for line in proc.stdout:
            served.lines.append(line.rstrip("\n"))
            served._queue.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while not any("Serving" in line for line in served.lines):
        served.wait_for(r"^(\S+): (http://\S+)$|Serving", max(1.0, deadline - time.monotonic()))
    for line in served.lines:
        if match := re.match(r"^(\S+): (http://127\.0\.0\.1:\d+/\S*)$", line):
            served.urls[match.group(1)] = match.group(2)
    return served


def stop_serve(served: ServeProcess) -> None:
    """Ctrl-C, as a user would; then make sure it is gone."""
    served.proc.send_signal(signal.SIGINT)
    try:
        served.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.wait()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self):
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, method: str = "GET", headers: dict | None = None, data: bytes | None = None) -> Reply:
    """One real HTTP request, redirects not followed, any status returned."""
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        response = _opener.open(request, timeout=60)
    except urllib.error.HTTPError as e:
        response = e
    with response:
        body = response.read()
        merged: dict[str, str] = {}
        for name, value in response.headers.items():
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return Reply(response.status, merged, body)
