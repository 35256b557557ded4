"""The sandbox: a local AWS emulator (moto's server) that lasts, so every command can be tried offline.

``dl sandbox up`` starts ``python -m dl.local.sandbox`` in the background as its own process, bound to 127.0.0.1.
The emulator keeps its state in memory for as long as it runs; ``.dl/sandbox.json`` (in the working
directory, git-ignored; ``DL_SANDBOX_DIR`` moves it) holds its address and process id, so the next command
finds it. ``--sandbox`` on a command that uses AWS points boto3 at it (through the standard
``AWS_ENDPOINT_URL``, with dummy credentials), starting it first when none runs. ``dl sandbox down`` stops it
and everything it held is gone. Needs the ``sandbox`` extra (moto's server).

The emulator process calls :func:`emulator_hook` with its server, so a test suite can watch what it receives.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dl.errors import DlError

HOOK_ENV = "DL_EMULATOR_HOOK"  # "module:function" called with each emulator dl starts (tests watch templates)
SANDBOX_ENV = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_SESSION_TOKEN": "sandbox",
}
STATE_FILE = "sandbox.json"
LOG_FILE = "sandbox.log"
START_TIMEOUT = 60.0  # seconds for the emulator process to import moto and listen


def emulator_hook(server) -> None:
    """Hand an emulator dl started to the callable ``$DL_EMULATOR_HOOK`` names (``module:function``), if any.

    Nothing happens without the variable. The test suite sets it so that the sandbox's emulator checks every
    template it receives, as the tests' own emulator does (tests/support/template_gate.py).
    """
    target = os.environ.get(HOOK_ENV)
    if not target:
        return
    module_name, _, function_name = target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name) if function_name else None
    except (ImportError, AttributeError) as exc:
        raise DlError(f"{HOOK_ENV}={target!r}: cannot load it ({exc})") from None
    if not callable(function):
        raise DlError(f"{HOOK_ENV}={target!r}: expected module:function naming a callable")
    function(server)


def quiet() -> None:
    """The emulator's request log and its "not supported" warnings are noise for the user."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", module=r"moto(\..*)?")
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.ERROR)


def install_hint() -> str:
    """How to install the emulator: from a clone of the repository, the editable install's extra."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / ".git").exists():
        return f"pip install -e '.[sandbox]' (in {checkout})"
    return "pip install 'datasette-lambda[sandbox]'"


def _require_moto() -> None:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise DlError(f"--sandbox needs the AWS emulator (moto's server): {install_hint()}") from None


# --- where a running sandbox is recorded -----------------------------------------------------------------------


def state_dir() -> Path:
    """``.dl/`` in the working directory, or ``DL_SANDBOX_DIR``."""
    return Path(os.environ.get("DL_SANDBOX_DIR") or ".dl").absolute()


@dataclass(frozen=True)
class Running:
    """A sandbox that answers: its URL and process id."""

    url: str
    pid: int


def _read_state(folder: Path) -> Running | None:
    try:
        data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        return Running(str(data["url"]), int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _answers(url: str) -> bool:
    """True when moto's server answers at ``url`` (its own API, not any AWS service)."""
    try:  # a cheap endpoint: /moto-api/data.json would list every resource (and ask Docker about some)
        with urllib.request.urlopen(f"{url}/moto-api/config", timeout=5) as response:
            return "lambda" in json.loads(response.read())
    except (OSError, ValueError):
        return False


def running(folder: Path | None = None) -> Running | None:
    """The recorded sandbox if it is alive and answers; a stale record is removed."""
    folder = folder or state_dir()
    found = _read_state(folder)
    if found is None:
        return None
    if _pid_alive(found.pid) and _answers(found.url):
        return found
    with contextlib.suppress(OSError):
        (folder / STATE_FILE).unlink()
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- up and down ----------------------------------------------------------------------------------------------


def up(folder: Path | None = None) -> tuple[Running, bool]:
    """The running sandbox, started in the background when none runs: (sandbox, whether it was started now)."""
    import fcntl

    folder = folder or state_dir()
    if found := running(folder):
        return found, False
    _require_moto()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sandbox.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two commands starting at once share one sandbox
        if found := running(folder):
            return found, False
        return _start(folder), True


def _start(folder: Path) -> Running:
    log = open(folder / LOG_FILE, "ab")  # the child process writes to it; our copy is closed below
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dl.local.sandbox", str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=folder,
            start_new_session=True,  # its own process: it outlives the command and ignores its Ctrl-C
        )
    finally:
        log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = _read_state(folder)
        if found and found.pid == proc.pid and _answers(found.url):
            return found
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait(timeout=5)
    tail = (folder / LOG_FILE).read_text(errors="replace").strip().splitlines()[-5:]
    raise DlError(
        "the sandbox did not start"
        + (f"; its log ({folder / LOG_FILE}) ends with:\n" + "\n".join(tail) if tail else "")
    )


def down(folder: Path | None = None, timeout: float = 15.0) -> Running | None:
    """Stop the running sandbox (its state is gone with it); the one stopped, or None when none ran."""
    folder = folder or state_dir()
    found = running(folder)
    if found is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(found.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(found.pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(found.pid, os.WNOHANG)  # reap it when it is our own child
        time.sleep(0.1)
    if _pid_alive(found.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(found.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        (folder / STATE_FILE).unlink()
    return found


@contextlib.contextmanager
def environment(region: str | None, log=None) -> Iterator[str]:
    """Point boto3 at the sandbox (started when none runs) for the block; yield its URL; restore after."""
    found, started = up()
    if log:
        where = os.path.relpath(state_dir())
        log(
            f"Sandbox: {'started' if started else 'using'} the local AWS emulator at {found.url} "
            f"({where}/; `dl sandbox down` stops it); nothing reaches a real AWS account."
        )
    changes = {**SANDBOX_ENV, "AWS_ENDPOINT_URL": found.url, "DL_POLL_SECONDS": "0.2"}
    changes["AWS_REGION"] = region or os.environ.get("AWS_REGION") or "us-east-1"
    changes["AWS_DEFAULT_REGION"] = changes["AWS_REGION"]  # botocore reads this one
    saved = {k: os.environ.get(k) for k in [*changes, "AWS_PROFILE"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(changes)
    try:
        yield found.url
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


# --- the emulator process: `python -m dl.local.sandbox FOLDER` ----------------------------------------------------------


def serve(folder: Path) -> None:
    """Run moto's server on 127.0.0.1 until SIGTERM; record its address in ``folder`` while it runs."""
    from moto.server import ThreadedMotoServer

    quiet()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    emulator_hook(server)
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    request = urllib.request.Request(
        f"{url}/moto-api/config",
        data=json.dumps({"lambda": {"use_docker": False}}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with contextlib.suppress(OSError):
        urllib.request.urlopen(request, timeout=10).read()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    state = folder / STATE_FILE
    partial = folder / f".{STATE_FILE}.{os.getpid()}"
    partial.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n", encoding="utf-8")
    partial.replace(state)
    print(f"sandbox: listening on {url} (pid {os.getpid()})", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        if _read_state(folder) == Running(url, os.getpid()):
            with contextlib.suppress(OSError):
                state.unlink()
        server.stop()
        print("sandbox: stopped", flush=True)


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
