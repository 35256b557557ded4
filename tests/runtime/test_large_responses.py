"""Large responses: an upload to the artifact bucket that runs out of time leaves nothing behind (moto's S3)."""

from __future__ import annotations

import asyncio
import time

import boto3

from dl.runtime.large_responses import LargeResponses

BUCKET = "responses-bucket"


def test_an_upload_cancelled_while_s3_creates_it_is_aborted(aws):
    """The answer deadline can cancel the response while CreateMultipartUpload is still running in its thread:
    the upload it makes must be aborted, not left for the bucket's lifecycle rule."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    slow = boto3.client("s3")
    slow.meta.events.register("before-call.s3.CreateMultipartUpload", lambda **_: time.sleep(0.5))

    async def cancelled_open():
        opening = asyncio.ensure_future(
            LargeResponses(BUCKET, lambda: slow).open("pairs.csv", "text/csv", None)
        )
        await asyncio.sleep(0.1)  # S3 is creating the upload now
        opening.cancel()
        try:
            await opening
        except asyncio.CancelledError:
            return "cancelled"
        return "finished"

    assert asyncio.run(cancelled_open()) == "cancelled"
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
