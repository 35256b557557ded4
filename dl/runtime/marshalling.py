"""How big a response is once the Lambda runtime posts it, and Lambda's limit on that.

Lambda refuses a synchronous response whose payload exceeds 6 MB (6,291,556 bytes) with an opaque error. The
payload is what the runtime client posts to the Runtime API: the handler's return value marshalled to JSON
and encoded as UTF-8. AWS's runtime client, awslambdaric (4.2.2, ``lambda_runtime_marshaller.Encoder``), uses
simplejson with its default separators and decides the escaping by ``AWS_EXECUTION_ENV``: on
``AWS_Lambda_python3.12`` to ``3.15`` it passes ``ensure_ascii=False`` (non-ASCII text as UTF-8 bytes: "é" is
2 bytes), on every other value (python3.11, or unset) it escapes (``\\u00e9``: 6 bytes). simplejson's plain
encoder escapes exactly what the standard library's does (``"``, ``\\``, control characters; plus everything
outside printable ASCII when escaping), so ``json.dumps`` with the same flag gives the same bytes.

Mangum puts a text body (``text/*``, JSON, ...) into the payload as a string when it is valid UTF-8, and any
other body as base64 (4 bytes per 3).
"""

from __future__ import annotations

import codecs
import json

LAMBDA_RESPONSE_LIMIT = 6_291_556  # bytes of the posted payload: Lambda's synchronous response limit
UNESCAPED_RUNTIMES = {f"AWS_Lambda_python3.{minor}" for minor in range(12, 16)}  # as awslambdaric 4.2.2


def escapes_non_ascii(execution_env: str | None) -> bool:
    """Whether the runtime client escapes non-ASCII characters (``ensure_ascii``) for this environment."""
    return execution_env not in UNESCAPED_RUNTIMES


def posted_size(response: dict, ensure_ascii: bool) -> int:
    """The exact size in bytes of ``response`` as the runtime client posts it."""
    return len(json.dumps(response, ensure_ascii=ensure_ascii, allow_nan=True).encode("utf-8"))


class BodySize:
    """The size a body takes inside the payload, counted chunk by chunk as it is produced.

    ``text``: the body is a text type, so it is a JSON string while it decodes as UTF-8 (escaped as the runtime
    escapes it, without the two quotes); once it does not, Mangum sends it base64-encoded.
    """

    def __init__(self, text: bool, ensure_ascii: bool):
        self.ensure_ascii = ensure_ascii
        self.raw = 0  # bytes of the body
        self.escaped = 0  # bytes of the body as a JSON string, while it is text
        self.text = text
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def add(self, chunk: bytes) -> None:
        self.raw += len(chunk)
        if not self.text or not chunk:
            return
        try:
            decoded = self._decoder.decode(chunk)
        except UnicodeDecodeError:
            self.text = False
            return
        self.escaped += len(json.dumps(decoded, ensure_ascii=self.ensure_ascii).encode("utf-8")) - 2

    @property
    def encoded(self) -> int:
        """Bytes of the body in the payload (quotes included for text)."""
        if self.text:
            return self.escaped + 2
        return 4 * ((self.raw + 2) // 3)
