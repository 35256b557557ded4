"""Test-time template gate: the emulator refuses a template that real CloudFormation (or cfn-lint) would.

moto accepts templates that AWS refuses (a ``null`` anywhere, Metadata included) and never runs cfn-lint. This
gate sits where moto reads a template (``CloudFormationResponse.create_stack``, ``create_change_set`` and
``update_stack``: the inline ``TemplateBody``, or the object a ``TemplateURL`` names in the emulator's S3) and
checks it at that moment:

* no ``null`` anywhere (CloudFormation: "Template format error: [/Metadata/...] 'null' values are not allowed
  in templates");
* cfn-lint (its Python API, the request's region) with no error and no warning.

A finding makes the emulator answer with a ``ValidationError`` shaped like AWS's (so the command that sent the
template fails as it would on AWS) and is appended as one JSON line to the file named by
``$DL_TEMPLATE_GATE_FINDINGS``, which the test suite reads after each test to fail the test that caused it
(tests/conftest.py). The same file serves every process: the tests' emulator, and the ``--sandbox`` emulator
of a ``python -m dl`` subprocess (dl calls ``dl.local.sandbox.emulator_hook``, which calls :func:`install`).

Results are cached by cfn-lint version, region and the body's sha256 (in memory and, when
``$DL_TEMPLATE_GATE_CACHE`` names a folder, on disk): cfn-lint takes ~0.65 s a template and most tests send
the same few templates.

The patch is made on moto's class, so it covers every emulator of the process; ``install`` is idempotent.

``$DL_TEMPLATE_GATE_MODE=record`` (the fault-injection tests, whose client gives up on a response after 1 s,
less than a lint can take): a template not checked before is accepted at once and checked beside the request;
a finding still fails the test (:func:`drain` waits for those checks), it just no longer fails the call.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from importlib.metadata import version
from pathlib import Path

FINDINGS_ENV = "DL_TEMPLATE_GATE_FINDINGS"
CACHE_ENV = "DL_TEMPLATE_GATE_CACHE"
MODE_ENV = "DL_TEMPLATE_GATE_MODE"  # "refuse" (default) or "record"
GATED_ACTIONS = {
    "create_stack": "CreateStack",
    "create_change_set": "CreateChangeSet",
    "update_stack": "UpdateStack",
}
MAX_SHOWN = 5  # findings quoted in one error message

_lock = threading.Lock()
_memory: dict[str, list[str]] = {}
_installed = False
_pending: list[Future] = []
_background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="template-gate")


def install(server=None) -> None:
    """Gate every template moto's CloudFormation receives in this process (``server``: the emulator that asked;
    the patch covers it and any other in this process)."""
    global _installed
    from moto.cloudformation.responses import CloudFormationResponse

    with _lock:
        if _installed:
            return
        for method, action in GATED_ACTIONS.items():
            setattr(CloudFormationResponse, method, _gated(getattr(CloudFormationResponse, method), action))
        _installed = True


def _gated(method, action: str):
    @functools.wraps(method)
    def gated(self):
        body = _received_template(self)
        if body:
            where = {"action": action, "stack": self._get_param("StackName"), "region": self.region}
            if os.environ.get(MODE_ENV) == "record" and not checked(body, self.region):
                _pending.append(_background.submit(_check_and_record, body, where))
            else:
                findings = check(body, self.region)
                if findings:
                    record({**where, "findings": findings})
                    raise _refusal(findings)
        return method(self)

    return gated


def _received_template(response) -> str | None:
    """The template of this request as moto will read it (None: UsePreviousTemplate or no template)."""
    if response._get_bool_param("UsePreviousTemplate", False):
        return None
    body = response._get_param("TemplateBody")
    url = response._get_param("TemplateURL")
    if not body and url:
        try:
            body = response._get_stack_from_s3_url(url)
        except Exception:  # moto answers a missing object itself, in its own words
            return None
    return body


def _refusal(findings: list[str]) -> Exception:
    from moto.cloudformation.exceptions import ValidationError

    nulls = [f for f in findings if f.startswith("[")]
    findings = nulls or findings  # CloudFormation stops at a format error, before anything else
    shown = "; ".join(findings[:MAX_SHOWN])
    more = f" (and {len(findings) - MAX_SHOWN} more)" if len(findings) > MAX_SHOWN else ""
    return ValidationError(message=f"Template format error: {shown}{more}")


# --- the check ----------------------------------------------------------------------------------------------


def _check_and_record(body: str, where: dict) -> None:
    findings = check(body, where["region"])
    if findings:
        record({**where, "findings": findings})


def drain() -> None:
    """Wait for the checks running beside requests ("record" mode), so their findings are recorded."""
    while _pending:
        wait([_pending.pop() for _ in range(len(_pending))])


def _key(body: str, region: str) -> str:
    return f"{_cfn_lint_version()}-{region}-{hashlib.sha256(body.encode()).hexdigest()}"


def checked(body: str, region: str) -> bool:
    """Whether the result for `body` in `region` is known without running cfn-lint."""
    key = _key(body, region)
    return key in _memory or _read_cache(key) is not None


def check(body: str, region: str) -> list[str]:
    """Every reason AWS or cfn-lint would refuse `body` in `region` (empty: none). Cached."""
    key = _key(body, region)
    if key in _memory:
        return _memory[key]
    cached = _read_cache(key)
    if cached is None:
        cached = null_findings(body) + lint_findings(body, region)
        _write_cache(key, cached)
    _memory[key] = cached
    return cached


@functools.cache
def _cfn_lint_version() -> str:
    return version("cfn-lint")


def null_findings(body: str) -> list[str]:
    """CloudFormation's own refusal of each null, with its JSON pointer (a body that is not JSON: none here,
    cfn-lint reports what it makes of it)."""
    try:
        template = json.loads(body)
    except ValueError:
        return []
    return [f"[{path}] 'null' values are not allowed in templates" for path in null_paths(template)]


def null_paths(value, path: str = "") -> list[str]:
    """JSON pointers of every null in `value`."""
    if value is None:
        return [path or "/"]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    found = []
    for key, item in items:
        found += null_paths(item, f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}")
    return found


def lint_findings(body: str, region: str) -> list[str]:
    """cfn-lint's errors and warnings for `region`, as ``cfn-lint RULE path: message``."""
    import cfnlint.api

    with _lock:  # cfn-lint keeps module-level state; one template at a time
        matches = cfnlint.api.lint(body, config=cfnlint.api.ManualArgs(regions=[region]))
    return [
        f"cfn-lint {m.rule.id} {'/'.join(map(str, m.path or [])) or '-'}: {m.message}"
        for m in matches
        if m.rule.id[:1] in ("E", "W")
    ]


# --- cache and record ---------------------------------------------------------------------------------------


def _cache_file(key: str) -> Path | None:
    folder = os.environ.get(CACHE_ENV)
    return Path(folder) / f"{key}.json" if folder else None


def _read_cache(key: str) -> list[str] | None:
    path = _cache_file(key)
    try:
        return json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        return None


def _write_cache(key: str, findings: list[str]) -> None:
    path = _cache_file(key)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(findings))
    os.replace(tmp, path)


def record(finding: dict) -> None:
    """Append one refusal to the findings file (one line, one write: safe across processes)."""
    target = os.environ.get(FINDINGS_ENV)
    if not target:
        return
    line = json.dumps({**finding, "pid": os.getpid()}) + "\n"
    with _lock, open(target, "a", encoding="utf-8") as out:
        out.write(line)


class FindingsLog:
    """The findings file as the test suite reads it: what was recorded since the last look."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def new(self) -> list[dict]:
        """Findings recorded since the previous call (complete lines only)."""
        try:
            with open(self.path, "rb") as source:
                source.seek(self.offset)
                data = source.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]
