"""The runtime's environment variables, read once into a frozen value.

=====================  ==========================================================================================
``DL_INSTANCE_DIR``    the ``dl_instance`` folder (default: next to ``dl_runtime`` in the package)
``DL_ARTIFACT_BUCKET`` the artifact bucket: databases with location ``s3`` are fetched from it, and database
                       downloads (``/<db>.db``) redirect to a presigned URL of their key in it. Unset: no S3 at
                       all (``dl serve``); downloads are then served by Datasette, within Lambda's size limit.
``DL_FETCH_DIR``       where fetched databases are written (default ``/tmp/dl-databases``)
``DATASETTE_SECRET``   Datasette's signing secret; set it so that every Lambda sandbox signs alike
``DL_ORIGIN_SECRET``   when set, requests must carry the header ``x-dl-origin-secret`` with this value (CloudFront
                       adds it as an origin custom header), others get 403: the function URL cannot be used
                       around CloudFront
``DL_RESPONSE_LIMIT``  payload bytes above which a response goes to the artifact bucket (default: Lambda's
                       limit, 6,291,556; lower only to test the mechanism)
``DL_ANSWER_SECONDS``  how long the front door (HTTP API, CloudFront origin) waits; a response that cannot be
                       produced in that time is a clear 413 rather than the front door's 504 (unset: no limit)
``DL_DIRECT_RESPONSES`` set by ``dl serve`` (no bucket): responses over the limit are served as they are, and
                       the log says that Lambda would send them through S3
``AWS_EXECUTION_ENV``  set by Lambda (``AWS_Lambda_python3.13``): how the runtime client escapes text in the
                       response payload, and so how large a response is (see ``marshalling``)
=====================  ==========================================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
ORIGIN_SECRET_HEADER = "x-dl-origin-secret"


@dataclass(frozen=True)
class RuntimeSettings:
    instance_dir: Path
    artifact_bucket: str | None
    fetch_dir: Path
    secret: str | None
    origin_secret: str | None
    execution_env: str | None
    response_limit: int | None = None
    answer_seconds: float | None = None
    direct_responses: bool = False

    @classmethod
    def from_environ(cls, environ: dict | None = None) -> RuntimeSettings:
        """Read the settings from ``environ`` (default ``os.environ``); empty values count as unset."""
        env = os.environ if environ is None else environ
        return cls(
            instance_dir=Path(env.get("DL_INSTANCE_DIR") or PACKAGE_ROOT / "dl_instance"),
            artifact_bucket=env.get("DL_ARTIFACT_BUCKET") or None,
            fetch_dir=Path(env.get("DL_FETCH_DIR") or "/tmp/dl-databases"),
            secret=env.get("DATASETTE_SECRET") or None,
            origin_secret=env.get("DL_ORIGIN_SECRET") or None,
            execution_env=env.get("AWS_EXECUTION_ENV") or None,
            response_limit=int(env["DL_RESPONSE_LIMIT"]) if env.get("DL_RESPONSE_LIMIT") else None,
            answer_seconds=float(env["DL_ANSWER_SECONDS"]) if env.get("DL_ANSWER_SECONDS") else None,
            direct_responses=bool(env.get("DL_DIRECT_RESPONSES")),
        )
