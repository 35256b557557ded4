"""A function's log lines written to CloudWatch Logs, as Lambda writes them: `dl serve --sandbox`.

The sandbox's emulator cannot run a function (its Lambda needs Docker), so ``dl serve --sandbox`` runs the
package locally and sends what the function prints to the emulator's log group ``/aws/lambda/<function>``
with ``put_log_events``: one stream per worker (Lambda's ``YYYY/MM/DD/[$LATEST]<id>``, one per execution
environment), one event per line. ``dl logs --sandbox`` then reads them like a deployed function's.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

Log = Callable[[str], None]


class CloudWatchLines:
    """Writes lines to one log stream of ``log_group`` (created on the first line); failures are reported once."""

    def __init__(self, client, log_group: str, warn: Log):
        self.client = client
        self.log_group = log_group
        self.warn = warn
        self.stream: str | None = None
        self._lock = threading.Lock()
        self._broken = False

    def __call__(self, line: str) -> None:
        with self._lock:
            if self._broken:
                return
            try:
                if self.stream is None:
                    self.stream = self._create_stream()
                self.client.put_log_events(
                    logGroupName=self.log_group,
                    logStreamName=self.stream,
                    logEvents=[{"timestamp": int(time.time() * 1000), "message": line}],
                )
            except Exception as e:  # botocore's errors: serving goes on, the user is told once
                self._broken = True
                self.warn(f"warning: cannot write to CloudWatch Logs {self.log_group}: {e}")

    def _create_stream(self) -> str:
        try:
            self.client.create_log_group(logGroupName=self.log_group)
        except self.client.exceptions.ResourceAlreadyExistsException:
            pass  # made by the instance's stack, as for a deployed function
        name = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.client.create_log_stream(logGroupName=self.log_group, logStreamName=name)
        return name


def tee(*logs: Log) -> Log:
    """One log that writes each line to every one of ``logs``."""

    def write(line: str) -> None:
        for log in logs:
            log(line)

    return write
