"""S3 on the embedded store through boto3 itself: buckets, objects, ranges, listings,
multipart uploads, presigned URLs, S3's XML errors and its SigV4 rules; and no S3 at all
when an external store is configured."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from loopin.clock import ManualClock
from loopin.config import Settings
from loopin.services import Services, build_services
from loopin.web.aws.errors import WireError
from loopin.web.aws.s3_multipart import MULTIPART_DIR
from loopin.web.aws.s3_payload import verified_payload
from tests import aws_support
from tests.aws_support import client, error_code, serve_in_thread, signed

# The AWS tests' server: real port, clock at the real time (see aws_support).
clock = aws_support.clock
settings = aws_support.settings
url = aws_support.url


@pytest.fixture
def s3(url: str, access_key: tuple[str, str]) -> Any:
    s3 = client("s3", url, access_key)
    s3.create_bucket(Bucket="photos")
    return s3


def test_buckets_are_created_listed_and_checked(s3) -> None:
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["photos"]
    assert s3.head_bucket(Bucket="photos")["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="photos")
    with pytest.raises(s3.exceptions.ClientError) as caught:
        s3.head_bucket(Bucket="missing")
    assert error_code(caught.value) == (404, "404")
    with pytest.raises(s3.exceptions.ClientError) as caught:
        s3.create_bucket(Bucket="Bad_Name")
    assert error_code(caught.value) == (400, "InvalidBucketName")


def test_put_get_head_delete_keep_content_type_and_md5_etag(s3, services: Services) -> None:
    key = "inputs/ein Bild+1 %.jpg"
    put = s3.put_object(Bucket="photos", Key=key, Body=b"jpeg bytes", ContentType="image/jpeg")
    assert put["ETag"] == f'"{hashlib.md5(b"jpeg bytes").hexdigest()}"'
    got = s3.get_object(Bucket="photos", Key=key)
    assert got["Body"].read() == b"jpeg bytes" and got["ContentType"] == "image/jpeg" and got["ContentLength"] == 10
    head = s3.head_object(Bucket="photos", Key=key)
    assert head["ETag"] == put["ETag"] and head["LastModified"].year >= 2026
    assert services.store.get(f"s3://photos/{key}") == b"jpeg bytes"  # the same store loopin writes outputs to
    assert s3.delete_object(Bucket="photos", Key=key)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(s3.exceptions.NoSuchKey) as caught:
        s3.get_object(Bucket="photos", Key=key)
    assert error_code(caught.value) == (404, "NoSuchKey")
    with pytest.raises(s3.exceptions.ClientError) as caught:
        s3.head_object(Bucket="photos", Key=key)
    assert error_code(caught.value) == (404, "404")
    for call in (
        lambda: s3.put_object(Bucket="nobucket", Key="k", Body=b"x"),
        lambda: s3.get_object(Bucket="nobucket", Key="k"),
    ):
        with pytest.raises(s3.exceptions.NoSuchBucket):
            call()


def test_get_object_ranges(s3) -> None:
    s3.put_object(Bucket="photos", Key="digits", Body=b"0123456789")
    for header, body, content_range in [
        ("bytes=0-4", b"01234", "bytes 0-4/10"),
        ("bytes=-3", b"789", "bytes 7-9/10"),
        ("bytes=5-", b"56789", "bytes 5-9/10"),
        ("bytes=8-100", b"89", "bytes 8-9/10"),
    ]:
        got = s3.get_object(Bucket="photos", Key="digits", Range=header)
        assert (got["Body"].read(), got["ContentRange"]) == (body, content_range)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    with pytest.raises(s3.exceptions.ClientError) as caught:
        s3.get_object(Bucket="photos", Key="digits", Range="bytes=10-")
    assert error_code(caught.value) == (416, "InvalidRange")


def test_list_objects_v2_with_prefix_delimiter_and_pages(s3) -> None:
    keys = ["a/1.jpg", "a/2.jpg", "a/b/3.jpg", "c.jpg", "d e%.jpg", "z/9.json"]
    for key in keys:
        s3.put_object(Bucket="photos", Key=key, Body=key.encode())
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket="photos", PaginationConfig={"PageSize": 2}))
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == keys and len(pages) == 3
    top = s3.list_objects_v2(Bucket="photos", Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["c.jpg", "d e%.jpg"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "z/"]
    inside = s3.list_objects_v2(Bucket="photos", Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in inside["Contents"]] == ["a/1.jpg", "a/2.jpg"]
    assert [p["Prefix"] for p in inside["CommonPrefixes"]] == ["a/b/"]
    first = s3.list_objects_v2(Bucket="photos", Delimiter="/", MaxKeys=1)
    assert first["IsTruncated"] and first["KeyCount"] == 1
    rest = s3.list_objects_v2(Bucket="photos", Delimiter="/", ContinuationToken=first["NextContinuationToken"])
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == ["z/"] and len(rest["Contents"]) == 2
    v1 = list(s3.get_paginator("list_objects").paginate(Bucket="photos", PaginationConfig={"PageSize": 4}))
    assert [o["Key"] for p in v1 for o in p.get("Contents", [])] == keys and len(v1) == 2
    item = s3.list_objects_v2(Bucket="photos", Prefix="c")["Contents"][0]
    assert item["Size"] == 5 and item["ETag"] == f'"{hashlib.md5(b"c.jpg").hexdigest()}"'


def test_large_files_go_up_in_parts_with_upload_fileobj(s3, services: Services, tmp_path: Path) -> None:
    data = os.urandom(12 * 1024 * 1024 + 17)  # above boto3's 8 MiB multipart threshold
    s3.upload_fileobj(io.BytesIO(data), "photos", "big.bin", ExtraArgs={"ContentType": "video/mp4"})
    target = tmp_path / "back.bin"
    s3.download_file("photos", "big.bin", str(target), Config=TransferConfig(multipart_threshold=5 * 1024 * 1024))
    assert target.read_bytes() == data
    assert s3.head_object(Bucket="photos", Key="big.bin")["ContentType"] == "video/mp4"
    assert list((services.store.root / MULTIPART_DIR).iterdir()) == []  # parts cleaned up


def test_multipart_abort_and_bad_completions(s3) -> None:
    upload = s3.create_multipart_upload(Bucket="photos", Key="parts.bin")["UploadId"]
    small = s3.upload_part(Bucket="photos", Key="parts.bin", UploadId=upload, PartNumber=1, Body=b"tiny")
    last = s3.upload_part(Bucket="photos", Key="parts.bin", UploadId=upload, PartNumber=2, Body=b"last")
    for parts, code in [
        ([{"PartNumber": 1, "ETag": '"0000"'}], "InvalidPart"),
        ([{"PartNumber": 2, "ETag": small["ETag"]}, {"PartNumber": 1, "ETag": small["ETag"]}], "InvalidPartOrder"),
        ([{"PartNumber": 1, "ETag": small["ETag"]}, {"PartNumber": 2, "ETag": last["ETag"]}], "EntityTooSmall"),
    ]:
        with pytest.raises(s3.exceptions.ClientError) as caught:
            s3.complete_multipart_upload(
                Bucket="photos", Key="parts.bin", UploadId=upload, MultipartUpload={"Parts": parts}
            )
        assert error_code(caught.value) == (400, code)
    s3.abort_multipart_upload(Bucket="photos", Key="parts.bin", UploadId=upload)
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.upload_part(Bucket="photos", Key="parts.bin", UploadId=upload, PartNumber=3, Body=b"late")
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.upload_part(Bucket="photos", Key="parts.bin", UploadId="../../etc", PartNumber=1, Body=b"x")


@pytest.mark.parametrize("version", ["default (SigV2)", "s3v4"])
def test_presigned_get_works_until_it_expires(s3, url, access_key, clock: ManualClock, version: str) -> None:
    s3.put_object(Bucket="photos", Key="cat.jpg", Body=b"meow", ContentType="image/jpeg")
    signer = client("s3", url, access_key, **({"signature_version": version} if version == "s3v4" else {}))
    link = signer.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "cat.jpg"}, ExpiresIn=60)
    assert ("X-Amz-Signature=" in link) == (version == "s3v4")
    response = httpx.get(link)
    assert response.status_code == 200 and response.content == b"meow"
    tampered = httpx.get(link.replace("cat.jpg", "dog.jpg"))
    assert tampered.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in tampered.content
    clock.advance(120)  # past the link's 60 s, counted from when the client signed it
    expired = httpx.get(link)
    assert expired.status_code == 403 and b"<Code>AccessDenied</Code>" in expired.content
    assert b"Request has expired" in expired.content


def test_s3_signature_errors_use_s3_codes(url, access_key, s3) -> None:
    wrong = client("s3", url, (access_key[0], "wrong"))
    with pytest.raises(wrong.exceptions.ClientError) as caught:
        wrong.list_objects_v2(Bucket="photos")
    assert error_code(caught.value) == (403, "SignatureDoesNotMatch")
    unknown = client("s3", url, ("LKIANOBODY0000000000", "x"))
    with pytest.raises(unknown.exceptions.ClientError) as caught:
        unknown.list_objects_v2(Bucket="photos")
    assert error_code(caught.value) == (403, "InvalidAccessKeyId")


def test_a_body_that_differs_from_its_signed_hash_is_refused(url, access_key, s3) -> None:
    good = signed("PUT", f"{url}/photos/x", access_key, service="s3", body=b"right", headers=_sha(b"right"))
    assert good.status_code == 200
    response = signed("PUT", f"{url}/photos/x", access_key, service="s3", body=b"wrong", headers=_sha(b"right"))
    assert response.status_code == 400 and b"<Code>XAmzContentSHA256Mismatch</Code>" in response.content
    assert s3.get_object(Bucket="photos", Key="x")["Body"].read() == b"right"


def _sha(body: bytes) -> dict[str, str]:
    return {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}


def test_aws_chunked_bodies_with_a_trailing_checksum_are_decoded_and_checked() -> None:
    data = os.urandom(300_000)
    raw = AwsChunkedWrapper(io.BytesIO(data), Crc32Checksum, "x-amz-checksum-crc32", chunk_size=65536).read()
    headers = {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "content-encoding": "aws-chunked"}
    assert verified_payload(raw, headers) == data
    with pytest.raises(WireError) as caught:
        verified_payload(raw.replace(data[:100], bytes(100), 1), headers)
    assert caught.value.code == "BadDigest"


def test_with_an_external_store_loopin_serves_no_s3(settings: Settings, clock: ManualClock, moto_endpoint: str) -> None:
    external = Settings(**settings.model_dump() | {"s3_endpoint_url": moto_endpoint})
    services = build_services(external, clock=clock)
    try:
        with serve_in_thread(services) as base:
            s3 = client("s3", base, ("LKIAANYTHING00000000", "x"))
            with pytest.raises(s3.exceptions.ClientError) as caught:
                s3.list_buckets()
            assert error_code(caught.value) == (501, "NotImplemented")
            assert "external S3 store" in caught.value.response["Error"]["Message"]
    finally:
        services.db.dispose()
