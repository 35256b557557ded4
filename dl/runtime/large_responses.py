"""Responses too large for Lambda, written to the artifact bucket while Datasette produces them.

A response that would exceed Lambda's payload limit (a full-table CSV export, a large JSON page) is streamed
into a multipart upload under ``responses/`` in the artifact bucket, part by part as Datasette sends it, so
memory holds at most one part being filled and one being uploaded. When Datasette is done the upload is
completed and the client gets a ``303`` (``Cache-Control: no-store``) to a presigned URL of the object, valid
for ``URL_SECONDS``. The object keeps Datasette's ``Content-Type`` and ``Content-Disposition``. The bucket's
lifecycle rule expires ``responses/`` a day after upload (current and noncurrent versions), and aborts
uploads left incomplete. The function's role may write (``s3:PutObject``, ``s3:AbortMultipartUpload``) and
read only there.

S3 requires parts of at least 5 MiB except the last, and at most 10,000 of them: parts of ``PART_SIZE``
(8 MiB) allow 78 GiB, far more than Datasette produces in a Lambda's time.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime

PREFIX = "responses/"
PART_SIZE = 8 * 1024 * 1024
URL_SECONDS = 300
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class LargeResponses:
    """Where large responses go: the artifact bucket, through a lazily created S3 client."""

    def __init__(self, bucket: str, client_factory):
        self.bucket = bucket
        self.client_factory = client_factory

    async def open(self, filename: str, content_type: str, disposition: str | None) -> Upload:
        """Start a multipart upload for one response."""
        client = self.client_factory()
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        key = f"{PREFIX}{day}/{uuid.uuid4().hex}/{SAFE_NAME.sub('_', filename)[:100] or 'response'}"
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": content_type or "application/octet-stream",
        }
        if disposition:
            params["ContentDisposition"] = disposition
        creating = asyncio.ensure_future(asyncio.to_thread(client.create_multipart_upload, **params))
        try:
            created = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # out of time while S3 creates it: the thread still creates the upload, so abort it once it exists
            # (else it would wait for the lifecycle rule), then give up as asked
            try:
                upload_id = (await creating)["UploadId"]
                await asyncio.to_thread(
                    client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id
                )
            except Exception:  # the bucket's AbortIncompleteMultipartUpload rule is the backstop
                pass
            raise
        return Upload(client, self.bucket, key, created["UploadId"])


class Upload:
    """One multipart upload fed with ``write``; at most one part uploads while the next fills."""

    def __init__(self, client, bucket: str, key: str, upload_id: str):
        self.client = client
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.size = 0
        self._buffer = bytearray()
        self._parts: list[dict] = []
        self._in_flight: asyncio.Task | None = None

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= PART_SIZE:
            part = bytes(self._buffer[:PART_SIZE])
            del self._buffer[:PART_SIZE]
            await self._send_part(part)

    async def finish(self) -> str:
        """Upload what is left, complete the upload; returns a presigned URL of the object."""
        if self._buffer or not self._parts:
            await self._send_part(bytes(self._buffer))
            self._buffer.clear()
        await self._wait()
        await asyncio.to_thread(
            self.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key}, ExpiresIn=URL_SECONDS
        )

    async def abort(self) -> None:
        """Give up: no object is created and the parts are freed (the lifecycle rule is the backstop)."""
        self._buffer.clear()
        if self._in_flight is not None:
            self._in_flight.cancel()
        try:
            await asyncio.to_thread(
                self.client.abort_multipart_upload, Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )
        except Exception:  # the bucket's AbortIncompleteMultipartUpload rule cleans up after a day
            pass

    async def _send_part(self, data: bytes) -> None:
        await self._wait()  # one part in flight: memory stays at two parts
        number = len(self._parts) + 1
        self._parts.append({"PartNumber": number})
        self._in_flight = asyncio.create_task(self._upload(number, data))

    async def _upload(self, number: int, data: bytes) -> None:
        result = await asyncio.to_thread(
            self.client.upload_part,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts[number - 1]["ETag"] = result["ETag"]

    async def _wait(self) -> None:
        if self._in_flight is not None:
            task, self._in_flight = self._in_flight, None
            await task
