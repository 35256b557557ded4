"""The loop ``dl serve`` runs in an isolated interpreter, standing in for the Lambda runtime.

``dl serve`` starts ``python -I -S -B`` with the unpacked package as the only addition to ``sys.path`` and the
working directory elsewhere, then sends Lambda events on the worker's stdin and reads responses from a pipe
given as a file descriptor (stdout and stderr stay free for the handler's logs, as in CloudWatch). Each
message is a 4-byte big-endian length followed by that many bytes of JSON. The first message the worker
sends is ``{"ready": true}`` once the handler module is imported (Lambda's init phase), or
``{"ready": false, "error": "..."}``. Then every event gets one response: the handler's return value, or
``{"error": "..."}`` if the handler raised (Lambda would answer 502).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
import traceback
import uuid

HEADER = struct.Struct(">I")


def read_message(stream) -> dict | None:
    """One framed JSON message from a binary stream, or None at end of stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (length,) = HEADER.unpack(header)
    return json.loads(stream.read(length))


def write_message(stream, message: dict) -> None:
    """Write one framed JSON message and flush."""
    data = json.dumps(message).encode("utf-8")
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


class LocalContext:
    """The parts of Lambda's context object a handler may read."""

    def __init__(self, timeout_seconds: float):
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "dl-serve")
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{self.function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(response_fd: int) -> None:
    """Import the handler, then answer events until stdin closes."""
    responses = os.fdopen(response_fd, "wb")
    events = sys.stdin.buffer
    try:
        from .handler import handler
    except BaseException:
        write_message(responses, {"ready": False, "error": traceback.format_exc()})
        return
    write_message(responses, {"ready": True})
    timeout = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "30"))
    while (event := read_message(events)) is not None:
        try:
            response = handler(event, LocalContext(timeout))
        except Exception:
            traceback.print_exc()
            response = {"error": traceback.format_exc()}
        write_message(responses, response)
