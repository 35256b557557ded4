"""What `dl logs` shows (its command: dl/commands/logs.py): an instance's CloudWatch logs, with Lambda's own
lines shortened.

Pipeline position: an effect at the edge. The manifest names the function; ``filter_log_events`` (the only
AWS call, read-only) yields events; small pure functions turn each event into one display line.

* The function of instance ``I`` in project ``P`` is ``P-I`` (the instance stack's name), so its log group is
  ``/aws/lambda/P-I``.
* ``--follow`` polls (``filter_log_events`` every couple of seconds, de-duplicated by ``eventId``, with a short
  look-back for events CloudWatch ingests late). Live tail (``StartLiveTail``) is not used.
* Lambda's platform lines: ``START``, ``END`` and ``XRAY`` are dropped (they carry only the request id),
  ``REPORT`` becomes ``REPORT duration=12.3ms billed=13ms init=812.4ms memory=98/1024MB`` and ``INIT_START``
  becomes ``INIT_START python:3.13.v16``. The same happens for Lambda's JSON log format
  (``platform.start``/``platform.report``/``platform.initStart``).
* Messages are made safe for a terminal: escape sequences (colours, cursor movement, window titles) and
  other control characters are removed; ``\\r``-separated multi-line messages (how Lambda's Python runtime
  logs a traceback) are shown as indented continuation lines.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dl.errors import DlError

DEFAULT_SINCE = "10m"
POLL_INTERVAL = 2.0  # seconds between polls with --follow
LATE_EVENTS_MS = 30_000  # --follow looks this far back for events CloudWatch ingests late

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


# --- names and options ----------------------------------------------------------------------------


def parse_since(text: str, now: datetime | None = None) -> int:
    """``--since`` as epoch milliseconds: ``45s``, ``10m``, ``2h``, ``3d``, ``1w`` ago, or an ISO-8601 time.

    An ISO time without a zone is UTC. Raises ``ValueError`` with a user-facing message on bad input.
    """
    now = now or datetime.now(UTC)
    match = _DURATION.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        try:
            return _epoch_ms(now - timedelta(**{_UNITS[unit]: amount}))
        except OverflowError:
            raise ValueError(f"{text!r} reaches back before year 1") from None
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (45s, 10m, 2h, 3d, 1w) nor an ISO-8601 time "
            "(2024-05-01, 2024-05-01T12:00:00Z, 2024-05-01T14:00+02:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _epoch_ms(moment)


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- reading events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEvent:
    """One CloudWatch log event, as ``filter_log_events`` returns it."""

    event_id: str
    timestamp: int  # epoch milliseconds
    message: str
    stream: str

    @classmethod
    def from_api(cls, raw: dict) -> LogEvent:
        return cls(raw["eventId"], raw["timestamp"], raw.get("message", ""), raw.get("logStreamName", ""))


def logs_client(region: str | None = None):
    """A CloudWatch Logs client with the standard configuration chain and adaptive retries."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    config = Config(retries={"mode": "adaptive", "max_attempts": 10})
    try:
        region = region or os.environ.get("AWS_REGION")  # botocore itself reads only AWS_DEFAULT_REGION
        return boto3.session.Session().client("logs", region_name=region, config=config)
    except BotoCoreError as e:  # e.g. NoRegionError
        raise DlError(
            f"cannot reach CloudWatch Logs: {e} (set AWS_REGION or the manifest's region)"
        ) from None


def fetch_events(
    client, log_group: str, start_ms: int, filter_pattern: str | None = None
) -> Iterator[LogEvent]:
    """Every event of the group from ``start_ms`` on, oldest first, across all pages and streams."""
    kwargs = {"logGroupName": log_group, "startTime": start_ms}
    if filter_pattern:
        kwargs["filterPattern"] = filter_pattern
    # `interleaved` is ignored by AWS (always on since 2019); moto still needs it to sort across streams.
    kwargs["interleaved"] = True
    for page in client.get_paginator("filter_log_events").paginate(**kwargs):
        for raw in page.get("events", []):
            yield LogEvent.from_api(raw)


def follow_events(
    client,
    log_group: str,
    start_ms: int,
    filter_pattern: str | None = None,
    *,
    interval: float = POLL_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[LogEvent]:
    """Events from ``start_ms`` on, then new ones as they arrive, forever (stop by closing or Ctrl-C).

    Each poll starts a little before the newest event seen (CloudWatch can ingest events late, with
    earlier timestamps); events already yielded are recognised by ``eventId``.
    """
    seen: dict[str, int] = {}  # eventId -> timestamp, for events inside the look-back window
    window_start = start_ms
    while True:
        for event in fetch_events(client, log_group, window_start, filter_pattern):
            if event.event_id not in seen:
                seen[event.event_id] = event.timestamp
                yield event
        if seen:
            window_start = max(start_ms, max(seen.values()) - LATE_EVENTS_MS)
            seen = {eid: ts for eid, ts in seen.items() if ts >= window_start}
        sleep(interval)


# --- display --------------------------------------------------------------------------------------

# CSI (colours, cursor), OSC (titles, hyperlinks; ended by BEL or ST), other two-character ESC sequences,
# and the 8-bit CSI/OSC introducers.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x9d[^\x07\x9c]*[\x07\x9c]?"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_escapes(text: str) -> str:
    """``text`` without terminal escape sequences or control characters (tabs and newlines stay)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def format_time(timestamp_ms: int) -> str:
    """``2024-05-01T12:00:00.123Z``: UTC, to the millisecond."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{timestamp_ms % 1000:03d}Z"


def format_event(event: LogEvent) -> str | None:
    """The display line(s) for one event, or None for a line not worth showing (START, END, XRAY)."""
    message = shorten_message(event.message.rstrip("\r\n"))
    if message is None:
        return None
    stamp = format_time(event.timestamp)
    first, *rest = strip_escapes(message).split("\n")
    indent = " " * (len(stamp) + 1)
    return "\n".join([f"{stamp} {first}", *(indent + line for line in rest)])


def shorten_message(message: str) -> str | None:
    """Lambda's own lines shortened to the useful part; None to drop; other messages unchanged."""
    if message.startswith(("START RequestId:", "END RequestId:", "XRAY TraceId:")):
        return None
    if message.startswith("REPORT RequestId:"):
        return _report_line(_text_fields(message))
    if message.startswith("INIT_START "):
        fields = _text_fields(message.removeprefix("INIT_START "))
        return f"INIT_START {fields.get('Runtime Version', '')}".rstrip()
    if message.startswith("{"):
        return _shorten_json(message)
    return message


def _text_fields(message: str) -> dict[str, str]:
    """``Key: value`` pairs of a tab-separated platform line."""
    fields = {}
    for part in message.split("\t"):
        key, sep, value = part.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _report_line(fields: dict[str, str]) -> str:
    """``REPORT duration=12.3ms billed=13ms init=812.4ms memory=98/1024MB [status=timeout]``."""
    parts = ["REPORT"]
    if "Duration" in fields:
        parts.append(f"duration={_ms(fields['Duration'])}")
    if "Billed Duration" in fields:
        parts.append(f"billed={_ms(fields['Billed Duration'], digits=0)}")
    if "Init Duration" in fields:
        parts.append(f"init={_ms(fields['Init Duration'])}")
    if "Max Memory Used" in fields and "Memory Size" in fields:
        used, size = (fields[k].removesuffix("MB").strip() for k in ("Max Memory Used", "Memory Size"))
        parts.append(f"memory={used}/{size}MB")
    if fields.get("Status") and fields["Status"] != "success":
        parts.append(f"status={fields['Status']}")
    if fields.get("Error Type"):
        parts.append(f"error={fields['Error Type']}")
    return " ".join(parts)


def _ms(value: str, digits: int = 1) -> str:
    number = value.removesuffix("ms").strip()
    try:
        return f"{float(number):.{digits}f}ms"
    except ValueError:
        return value.replace(" ", "")


_JSON_APP_KEYS = {"timestamp", "time", "level", "message", "logger", "requestId", "traceId"}


def _shorten_json(message: str) -> str | None:
    """Lambda's JSON log format: platform events as in text format, plain application lines as ``LEVEL msg``."""
    try:
        doc = json.loads(message)
    except ValueError:
        return message
    if not isinstance(doc, dict):
        return message
    kind, record = doc.get("type"), doc.get("record")
    if kind in ("platform.start", "platform.runtimeDone", "platform.end"):
        return None
    if kind == "platform.report" and isinstance(record, dict):
        metrics = record.get("metrics") or {}
        fields = {
            "Duration": metrics.get("durationMs"),
            "Billed Duration": metrics.get("billedDurationMs"),
            "Init Duration": metrics.get("initDurationMs"),
            "Max Memory Used": metrics.get("maxMemoryUsedMB"),
            "Memory Size": metrics.get("memorySizeMB"),
            "Status": record.get("status"),
        }
        return _report_line({k: str(v) for k, v in fields.items() if v is not None})
    if kind == "platform.initStart" and isinstance(record, dict):
        return f"INIT_START {record.get('runtimeVersion', '')}".rstrip()
    if "message" in doc and "level" in doc and set(doc) <= _JSON_APP_KEYS:
        return f"{doc['level']} {doc['message']}"
    return message


def render(events: Iterable[LogEvent]) -> Iterator[str]:
    """Display lines for events, skipping the dropped ones."""
    for event in events:
        line = format_event(event)
        if line is not None:
            yield line


# --- a log group's display lines ----------------------------------------------------------------


def read_logs(
    client,
    log_group: str,
    start_ms: int,
    filter_pattern: str | None = None,
    *,
    follow: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """Display lines of a log group (forever with ``follow``). Raises DlError for AWS failures.

    A missing log group raises :class:`MissingLogGroup` (the caller names the instance in the message).
    """
    events = (
        follow_events(client, log_group, start_ms, filter_pattern, sleep=sleep)
        if follow
        else fetch_events(client, log_group, start_ms, filter_pattern)
    )
    try:
        yield from render(events)
    except Exception as e:  # botocore's errors, turned into messages
        raise _as_dl_error(e, log_group) from None


class MissingLogGroup(DlError):
    """The log group does not exist: the function has not run (or not been deployed) yet."""


def _as_dl_error(error: Exception, log_group: str) -> Exception:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return MissingLogGroup(f"log group {log_group} does not exist")
        return DlError(f"reading {log_group} failed: {code}: {error.response['Error'].get('Message', '')}")
    if isinstance(error, BotoCoreError):
        return DlError(f"reading {log_group} failed: {error}")
    return error


def nothing_to_show(client, log_group: str, instance: str, start_ms: int, filter_pattern: str | None) -> str:
    """Why no line was shown: the function never logged, or nothing (matching) falls in the window."""
    try:
        streams = client.describe_log_streams(
            logGroupName=log_group, orderBy="LastEventTime", descending=True, limit=1
        ).get("logStreams", [])
    except Exception as e:  # botocore's errors, turned into messages
        raise _as_dl_error(e, log_group) from None
    latest = streams[0].get("lastEventTimestamp") if streams else None
    if latest is None:
        return f"no logs yet for instance {instance}: its function has not logged anything ({log_group} is empty)"
    matching = f" matching {filter_pattern!r}" if filter_pattern else ""
    message = f"no log events{matching} for instance {instance} since {format_time(start_ms)}"
    if latest < start_ms:
        message += f"; the latest event is from {format_time(latest)}: widen --since to see it"
    return message
