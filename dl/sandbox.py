"""`--sandbox`: a throwaway AWS emulator (moto's server) started in-process on 127.0.0.1.

A newcomer sees the whole plan/apply flow on the example without an AWS account. Everything it "deploys"
disappears when the command ends. Needs the `sandbox` extra: ``pip install 'datasette-lambda[sandbox]'``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import urllib.request
from collections.abc import Iterator

from dl.errors import DlError

HOOK_ENV = "DL_EMULATOR_HOOK"  # "module:function" called with each emulator dl starts (tests watch templates)
SANDBOX_ENV = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_SESSION_TOKEN": "sandbox",
}


def quiet() -> None:
    """The emulator's request log and its "not supported" warnings are noise for the user."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", module=r"moto(\..*)?")
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.ERROR)


def emulator_hook(server) -> None:
    """Hand an emulator dl started to the callable ``$DL_EMULATOR_HOOK`` names (``module:function``), if any.

    Nothing happens without the variable. The test suite sets it so that the emulator inside a `--sandbox`
    run checks every template it receives, as the tests' own emulator does (tests/support/template_gate.py).
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


@contextlib.contextmanager
def sandbox(region: str | None) -> Iterator[str]:
    """Start moto's server, point boto3 at it through the environment, yield its URL; restore everything after."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise DlError(
            "--sandbox needs the AWS emulator: pip install 'datasette-lambda[sandbox]' (moto's server)"
        ) from None
    quiet()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        emulator_hook(server)
    except BaseException:
        server.stop()
        raise
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
    changes = {**SANDBOX_ENV, "AWS_ENDPOINT_URL": url, "DL_POLL_SECONDS": "0.2"}
    changes["AWS_REGION"] = region or os.environ.get("AWS_REGION") or "us-east-1"
    changes["AWS_DEFAULT_REGION"] = changes["AWS_REGION"]  # botocore reads this one
    saved = {k: os.environ.get(k) for k in [*changes, "AWS_PROFILE"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(changes)
    try:
        yield url
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        server.stop()
