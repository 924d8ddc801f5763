"""The object stores: one behaviour suite for the local folder and for S3 (moto over HTTP)."""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from fastapi import FastAPI
from moto.server import ThreadedMotoServer
from starlette.testclient import TestClient

import loopin.store as store_module
from loopin.clock import ManualClock, utc_path
from loopin.config import Settings
from loopin.errors import (
    AccessDeniedError,
    ConflictError,
    NotFoundError,
    StoreUnavailableError,
    ValidationError,
)
from loopin.store import (
    LocalStore,
    ObjectStore,
    S3Store,
    join_uri,
    normalize_output_location,
    open_store,
    parse_object_uri,
)
from loopin.web.store_urls import store_router

SECRET = "test-secret-key"
PUBLIC_URL = "http://testserver"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_moto() -> tuple[ThreadedMotoServer, str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def _s3_store(endpoint_url: str) -> S3Store:
    return S3Store(
        endpoint_url=endpoint_url,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )


@functools.cache
def _admin_client(endpoint_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _create_bucket(endpoint_url: str, name: str) -> None:
    _admin_client(endpoint_url).create_bucket(Bucket=name)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server, url = _start_moto()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def s3_store(moto_url: str) -> S3Store:
    return _s3_store(moto_url)


@pytest.fixture
def s3_bucket(moto_url: str) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    _create_bucket(moto_url, name)
    return name


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "objects"


@pytest.fixture
def local_store(root: Path) -> LocalStore:
    return LocalStore(root, public_url=PUBLIC_URL, secret_key=SECRET)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, local_store: LocalStore) -> ObjectStore:
    if request.param == "local":
        return local_store
    s3: S3Store = request.getfixturevalue("s3_store")
    return s3


@pytest.fixture
def bucket(request: pytest.FixtureRequest, store: ObjectStore) -> str:
    if isinstance(store, S3Store):
        s3_bucket: str = request.getfixturevalue("s3_bucket")
        return s3_bucket
    return f"test-{uuid.uuid4().hex[:12]}"


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink())


# --- behaviour shared by both stores -------------------------------------------------


def test_put_get_head(store: ObjectStore, bucket: str) -> None:
    uri = f"s3://{bucket}/inputs/a.json"
    data = b'{"x": 1}'
    store.put(uri, data, content_type="application/json")

    assert store.get(uri) == data
    info = store.head(uri)
    assert info.uri == uri
    assert info.size == len(data)
    assert info.etag == hashlib.md5(data).hexdigest()
    assert info.content_type == "application/json"
    assert info.last_modified_ms > 1_600_000_000_000


def test_put_file_reads_a_local_file(store: ObjectStore, bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(3 << 20)  # several of put_file's pieces
    source.write_bytes(data)
    uri = f"s3://{bucket}/exports/big.bin"
    store.put_file(uri, source, content_type="application/zip")
    assert store.get(uri) == data
    info = store.head(uri)
    assert (info.size, info.content_type) == (len(data), "application/zip")
    if isinstance(store, LocalStore):
        assert info.etag == hashlib.md5(data).hexdigest()
        assert not [p for p in _files(store.root / bucket) if p.name.startswith(".loopin-tmp-")]


def test_default_content_type_and_overwrite(store: ObjectStore, bucket: str) -> None:
    uri = f"s3://{bucket}/blob"
    store.put(uri, b"one")
    assert store.head(uri).content_type == "application/octet-stream"

    store.put(uri, b"second", content_type="text/plain")
    assert store.get(uri) == b"second"
    info = store.head(uri)
    assert (info.size, info.content_type) == (6, "text/plain")
    assert info.etag == hashlib.md5(b"second").hexdigest()


def test_unusual_but_valid_keys(store: ObjectStore, bucket: str) -> None:
    for key in ["with space/ä ö.txt", "100%/done", "a..b/.hidden", "q?x=1&y#z"]:
        uri = f"s3://{bucket}/{key}"
        store.put(uri, key.encode())
        assert store.get(uri) == key.encode()


def test_list_by_prefix(store: ObjectStore, bucket: str) -> None:
    for key, data in [("out/z", b"z"), ("in/b/c", b"cc"), ("inx", b"x"), ("in/a", b"a")]:
        store.put(f"s3://{bucket}/{key}", data)

    def keys(prefix_uri: str) -> list[str]:
        return [info.uri.removeprefix(f"s3://{bucket}/") for info in store.list(prefix_uri)]

    assert keys(f"s3://{bucket}") == ["in/a", "in/b/c", "inx", "out/z"]
    assert keys(f"s3://{bucket}/") == ["in/a", "in/b/c", "inx", "out/z"]
    assert keys(f"s3://{bucket}/in") == ["in/a", "in/b/c", "inx"]
    assert keys(f"s3://{bucket}/in/") == ["in/a", "in/b/c"]
    assert keys(f"s3://{bucket}/in/b/c") == ["in/b/c"]
    assert keys(f"s3://{bucket}/nothing/") == []

    [info] = store.list(f"s3://{bucket}/in/b/")
    assert (info.size, info.etag) == (2, hashlib.md5(b"cc").hexdigest())


def test_missing_objects(store: ObjectStore, bucket: str) -> None:
    uri = f"s3://{bucket}/nope.json"
    with pytest.raises(NotFoundError):
        store.get(uri)
    with pytest.raises(NotFoundError):
        store.head(uri)
    store.delete(uri)  # deleting a missing object is fine


def test_delete(store: ObjectStore, bucket: str) -> None:
    store.put(f"s3://{bucket}/a/b", b"1")
    store.put(f"s3://{bucket}/keep", b"2")
    store.delete(f"s3://{bucket}/a/b")

    with pytest.raises(NotFoundError):
        store.get(f"s3://{bucket}/a/b")
    assert [i.uri for i in store.list(f"s3://{bucket}")] == [f"s3://{bucket}/keep"]
    # Once "a/b" is gone, "a" can be an object (no empty folder left behind locally).
    store.put(f"s3://{bucket}/a", b"3")
    assert store.get(f"s3://{bucket}/a") == b"3"


BAD_URIS = [
    "s3://{b}/../escape",
    "s3://{b}/a/../../escape",
    "s3://{b}/./x",
    "s3://{b}//etc/passwd",
    "s3://{b}/%2e%2e%2fescape",
    "s3://{b}/%2E%2E/escape",
    "s3://{b}/%252e%252e/escape",
    "s3://{b}/a%2fb",
    "s3://{b}/..%5cescape",
    "s3://{b}/a\\..\\..\\escape",
    "s3://{b}/a\x00b",
    "s3://{b}/a//b",
    "s3://{b}/a/",
    "s3://{b}/",
    "s3://{b}",
    "s3://{b}/.loopin-tmp-x",
    "https://s3.amazonaws.com/{b}/a/%2e%2e/%2e%2e/escape",
    "s3://../escape",
    "s3://Upper-Case/x",
    "s3://ab/x",
    "s3://-bucket/x",
    "s3://.loopin-meta/x",
    "file:///etc/passwd",
    "/etc/passwd",
    "https://example.com/{b}/x",
]


@pytest.mark.parametrize("template", BAD_URIS)
def test_bad_keys_are_rejected(store: ObjectStore, bucket: str, tmp_path: Path, template: str) -> None:
    uri = template.format(b=bucket)
    with pytest.raises(ValidationError):
        store.put(uri, b"evil")
    with pytest.raises(ValidationError):
        store.get(uri)
    with pytest.raises(ValidationError):
        store.delete(uri)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("prefix", ["s3://{b}/../", "s3://{b}/a/../..", "s3://{b}/%2e%2e/"])
def test_bad_list_prefixes_are_rejected(store: ObjectStore, bucket: str, prefix: str) -> None:
    with pytest.raises(ValidationError):
        store.list(prefix.format(b=bucket))


def test_signed_url_ttl_is_checked(store: ObjectStore, bucket: str) -> None:
    with pytest.raises(ValidationError):
        store.signed_url(f"s3://{bucket}/x", ttl_seconds=0, now_ms=ManualClock().now_ms())


# --- local store -----------------------------------------------------------------------


def test_local_layout(local_store: LocalStore, root: Path) -> None:
    local_store.put("s3://my-bucket/a/b.txt", b"hello", content_type="text/plain")
    assert (root / "my-bucket" / "a" / "b.txt").read_bytes() == b"hello"
    # Nothing but the object shows up in the bucket folder (metadata lives elsewhere).
    assert _files(root / "my-bucket") == [root / "my-bucket" / "a" / "b.txt"]


def test_local_symlinks_cannot_escape(local_store: LocalStore, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (root / "bkt").mkdir(parents=True)
    os.symlink(outside, root / "bkt" / "dirlink")
    os.symlink(outside / "secret", root / "bkt" / "filelink")
    local_store.put("s3://bkt/ok", b"ok")

    for uri in ["s3://bkt/dirlink/secret", "s3://bkt/filelink"]:
        with pytest.raises(ValidationError):
            local_store.get(uri)
    with pytest.raises(ValidationError):
        local_store.put("s3://bkt/dirlink/new", b"x")
    with pytest.raises(ValidationError):
        local_store.put("s3://bkt/filelink", b"x")

    assert [i.uri for i in local_store.list("s3://bkt")] == ["s3://bkt/ok"]
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"


def test_local_failed_write_keeps_old_object(
    local_store: LocalStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = "s3://bkt/data.json"
    local_store.put(uri, b"old", content_type="application/json")

    def crash(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store_module.os, "replace", crash)
    with pytest.raises(StoreUnavailableError):
        local_store.put(uri, b"new, longer content")
    monkeypatch.undo()

    assert local_store.get(uri) == b"old"
    assert local_store.head(uri).content_type == "application/json"
    assert not [p for p in _files(root) if p.name.startswith(".loopin-tmp-")]


def test_local_files_placed_by_hand(local_store: LocalStore, root: Path) -> None:
    (root / "bkt").mkdir(parents=True)
    (root / "bkt" / "pic.png").write_bytes(b"\x89PNG")
    info = local_store.head("s3://bkt/pic.png")
    assert info.content_type == "image/png"
    assert info.etag == hashlib.md5(b"\x89PNG").hexdigest()

    # Metadata of a file replaced behind the store's back is not trusted.
    local_store.put("s3://bkt/doc.json", b"{}", content_type="application/x-custom")
    (root / "bkt" / "doc.json").write_bytes(b'{"changed": true}')
    info = local_store.head("s3://bkt/doc.json")
    assert info.content_type == "application/json"
    assert info.etag == hashlib.md5(b'{"changed": true}').hexdigest()


def test_local_file_and_folder_conflict(local_store: LocalStore) -> None:
    local_store.put("s3://bkt/a", b"1")
    with pytest.raises(ConflictError):
        local_store.put("s3://bkt/a/b", b"2")
    local_store.put("s3://bkt/c/d", b"3")
    with pytest.raises(ConflictError):
        local_store.put("s3://bkt/c", b"4")
    with pytest.raises(NotFoundError):
        local_store.get("s3://bkt/c")


def test_local_store_needs_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalStore(tmp_path, public_url=PUBLIC_URL, secret_key="")


# --- signed local URLs through the router -----------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(local_store: LocalStore, clock: ManualClock) -> TestClient:
    app = FastAPI()
    app.include_router(store_router(local_store, clock))
    return TestClient(app)


def _path_and_query(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.path, parts.query


def test_signed_url_opens_the_object(local_store: LocalStore, client: TestClient, clock: ManualClock) -> None:
    uri = "s3://bkt/docs/report 1 ä.txt"
    local_store.put(uri, b"report", content_type="text/plain")
    url = local_store.signed_url(uri, ttl_seconds=60, now_ms=clock.now_ms())
    assert url.startswith(f"{PUBLIC_URL}/store/bkt/docs/report%201%20%C3%A4.txt?expires=")

    response = client.get(url)
    assert response.status_code == 200
    assert response.content == b"report"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "private, max-age=60"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]

    clock.advance(45)
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, max-age=15"


def _assert_denied(response: httpx.Response, text: str = "") -> None:
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "AccessDeniedException"
    assert text in error["message"]


def test_signed_url_opens_only_its_object(local_store: LocalStore, client: TestClient, clock: ManualClock) -> None:
    local_store.put("s3://bkt/mine", b"mine")
    local_store.put("s3://bkt/other", b"other")
    local_store.put("s3://bkt2/mine", b"other bucket")
    url = local_store.signed_url("s3://bkt/mine", ttl_seconds=60, now_ms=clock.now_ms())
    path, query = _path_and_query(url)
    expires = query.split("&")[0].removeprefix("expires=")

    assert client.get(url).status_code == 200
    _assert_denied(client.get(f"/store/bkt/other?{query}"), "signature")
    _assert_denied(client.get(f"/store/bkt2/mine?{query}"), "signature")
    _assert_denied(client.get(f"{path}?expires={int(expires) + 3600}&" + query.split("&")[1]))
    tampered = query[:-1] + ("0" if query[-1] != "0" else "1")
    _assert_denied(client.get(f"{path}?{tampered}"))
    _assert_denied(client.get(path))
    _assert_denied(client.get(f"{path}?expires=soon&signature=00"), "malformed")

    other = LocalStore(local_store.root, public_url=PUBLIC_URL, secret_key="another-secret")
    other_url = other.signed_url("s3://bkt/mine", ttl_seconds=60, now_ms=clock.now_ms())
    _assert_denied(client.get(other_url), "signature")


def test_signed_url_expires(local_store: LocalStore, client: TestClient, clock: ManualClock) -> None:
    local_store.put("s3://bkt/x", b"x")
    url = local_store.signed_url("s3://bkt/x", ttl_seconds=60, now_ms=clock.now_ms())
    clock.advance(59.999)
    assert client.get(url).status_code == 200
    clock.advance(0.001)
    _assert_denied(client.get(url), "expired")

    path, query = _path_and_query(url)
    params = dict(item.split("=") for item in query.split("&"))
    with pytest.raises(AccessDeniedError):
        local_store.verify_signature("bkt", "x", params["expires"], params["signature"], now_ms=clock.now_ms() + 10**9)


def test_signed_url_of_missing_object(local_store: LocalStore, client: TestClient, clock: ManualClock) -> None:
    url = local_store.signed_url("s3://bkt/gone", ttl_seconds=60, now_ms=clock.now_ms())
    response = client.get(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ResourceNotFound"


def test_html_objects_are_sandboxed(local_store: LocalStore, client: TestClient, clock: ManualClock) -> None:
    local_store.put("s3://bkt/page.html", b"<script>alert(1)</script>", content_type="text/html")
    url = local_store.signed_url("s3://bkt/page.html", ttl_seconds=60, now_ms=clock.now_ms())
    csp = client.get(url).headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "sandbox" in csp


# --- S3 specifics ------------------------------------------------------------------------


def test_s3_presigned_url(s3_store: S3Store, s3_bucket: str, moto_url: str) -> None:
    store, bucket = s3_store, s3_bucket
    store.put(f"s3://{bucket}/img/a b.png", b"\x89PNG data", content_type="image/png")

    url = store.signed_url(f"s3://{bucket}/img/a b.png", ttl_seconds=60, now_ms=0)
    assert url.startswith(f"{moto_url}/{bucket}/img/a%20b.png?")
    response = httpx.get(url, trust_env=False)
    assert response.status_code == 200
    assert response.content == b"\x89PNG data"


def test_s3_missing_bucket(s3_store: S3Store) -> None:
    with pytest.raises(NotFoundError, match="bucket"):
        s3_store.put("s3://no-such-bucket-here/x", b"x")


def test_s3_outage_surfaces_quickly() -> None:
    server, url = _start_moto()
    try:
        store = _s3_store(url)
        _create_bucket(url, "outage")
        store.put("s3://outage/x", b"before")
    finally:
        server.stop()

    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        store.put("s3://outage/x", b"after")
    with pytest.raises(StoreUnavailableError):
        store.get("s3://outage/x")
    assert time.monotonic() - started < 8


# --- URIs and settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/a/b.json", ("bucket", "a/b.json")),
        ("s3://my.bucket-1/x%y", ("my.bucket-1", "x%y")),
        ("https://s3.amazonaws.com/bucket/a/b%20c.json", ("bucket", "a/b c.json")),
        ("http://s3.amazonaws.com/bucket/k", ("bucket", "k")),
        ("https://s3.eu-west-1.amazonaws.com/bucket/k", ("bucket", "k")),
        ("https://bucket.s3.amazonaws.com/a/k", ("bucket", "a/k")),
        ("https://my.bucket.s3.us-west-2.amazonaws.com/k", ("my.bucket", "k")),
    ],
)
def test_parse_object_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_object_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://s3.amazonaws.com/bucket/k",
        "https://evil.com/bucket/k",
        "https://s3.amazonaws.com.evil.com/bucket/k",
        "https://s3.amazonaws.com/bucket/k?versionId=1",
        "s3:/bucket/k",
        "bucket/k",
    ],
)
def test_parse_object_uri_rejects(uri: str) -> None:
    with pytest.raises(ValidationError):
        parse_object_uri(uri)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/", "s3://bucket"),
        ("s3://bucket/out/put/", "s3://bucket/out/put"),
        ("https://s3.amazonaws.com/bucket/out/", "s3://bucket/out"),
    ],
)
def test_normalize_output_location(uri: str, expected: str) -> None:
    assert normalize_output_location(uri) == expected


def test_normalize_output_location_rejects() -> None:
    with pytest.raises(ValidationError, match="store root"):
        normalize_output_location("file:///tmp/out")
    for uri in ["s3://bucket/../out", "s3://bucket//out", "s3://bucket/out//", "s3://BUCKET"]:
        with pytest.raises(ValidationError):
            normalize_output_location(uri)


def test_join_uri() -> None:
    when = utc_path(ManualClock().now_ms())
    assert (
        join_uri("s3://bucket/out/", "flow", when, "loop", "output.json")
        == "s3://bucket/out/flow/2026/01/01/00/00/00/loop/output.json"
    )
    assert join_uri("s3://bucket", "flow", "output.json") == "s3://bucket/flow/output.json"
    for bad in [("..", "x"), ("a", ""), ("a\x00",)]:
        with pytest.raises(ValidationError):
            join_uri("s3://bucket/out", *bad)


def test_open_store(tmp_path: Path, moto_url: str, s3_bucket: str) -> None:
    local = open_store(Settings(data_dir=tmp_path, secret_key=SECRET, public_url="http://x/"))
    assert isinstance(local, LocalStore)
    assert local.root == (tmp_path / "objects").resolve()
    assert local.signed_url("s3://bkt/k", ttl_seconds=5, now_ms=0).startswith("http://x/store/")

    remote = open_store(
        Settings(
            data_dir=tmp_path,
            s3_endpoint_url=moto_url,
            s3_access_key_id="testing",
            s3_secret_access_key="testing",
        )
    )
    assert isinstance(remote, S3Store)
    remote.put(f"s3://{s3_bucket}/k", b"v")
    assert remote.get(f"s3://{s3_bucket}/k") == b"v"


def test_metadata_sidecars_do_not_carry_the_objects_name(local_store: LocalStore, root: Path) -> None:
    local_store.put("s3://out/flow/2026/loop/output.json", b'{"a": 1}', content_type="application/json")
    # `find <data_dir> -name output.json` finds the output, not its metadata.
    assert [p.relative_to(root).as_posix() for p in root.rglob("output.json")] == ["out/flow/2026/loop/output.json"]
    assert local_store.head("s3://out/flow/2026/loop/output.json").content_type == "application/json"
    local_store.delete("s3://out/flow/2026/loop/output.json")
    assert _files(root) == []


def test_sidecars_written_by_earlier_versions_are_still_read(local_store: LocalStore, root: Path) -> None:
    import json as _json

    path = root / "out" / "loop" / "output.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{}")
    st = path.stat()
    legacy = root / ".loopin-meta" / "out" / "loop" / "output.json"  # the old layout: the object's own name
    legacy.parent.mkdir(parents=True)
    meta = {"content_type": "application/x-kept", "etag": "0" * 32, "size": st.st_size, "ino": st.st_ino}
    legacy.write_text(_json.dumps(meta | {"mtime_ns": st.st_mtime_ns}))
    info = local_store.head("s3://out/loop/output.json")
    assert (info.content_type, info.etag) == ("application/x-kept", "0" * 32)
    local_store.put("s3://out/loop/output.json", b"{}", content_type="application/json")
    assert local_store.head("s3://out/loop/output.json").content_type == "application/json"
    assert not legacy.exists()  # rewritten in the new layout
    local_store.delete("s3://out/loop/output.json")
    assert _files(root) == []


def test_metadata_rides_on_the_file_as_an_extended_attribute(local_store: LocalStore, root: Path) -> None:
    uri = "s3://out/flow/loop/output.json"
    local_store.put(uri, b'{"a": 1}', content_type="application/x-kept")
    assert _files(root) == [root / "out/flow/loop/output.json"]  # no metadata tree, no second file
    info = local_store.head(uri)
    assert (info.content_type, info.etag) == ("application/x-kept", hashlib.md5(b'{"a": 1}').hexdigest())
    source = root.parent / "upload.bin"
    source.write_bytes(b"\x00" * 10)
    local_store.put_file("s3://out/blob", source, content_type="application/x-blob")
    assert local_store.head("s3://out/blob").content_type == "application/x-blob"
    assert not (root / ".loopin-meta").exists()


def test_a_file_changed_in_place_is_not_described_by_its_old_metadata(local_store: LocalStore, root: Path) -> None:
    uri = "s3://out/loop/output.json"
    local_store.put(uri, b"{}", content_type="application/x-kept")
    with open(root / "out/loop/output.json", "r+b") as fh:  # same inode, so the attribute stays
        fh.write(b'{"edited": true}')
    info = local_store.head(uri)
    assert info.etag == hashlib.md5(b'{"edited": true}').hexdigest()
    assert info.content_type == "application/json"  # guessed from the name again


def test_without_extended_attributes_the_metadata_goes_to_a_sidecar(
    local_store: LocalStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*_: Any) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(store_module.os, "setxattr", unsupported)
    local_store.put("s3://out/a.json", b"{}", content_type="application/x-kept")
    assert (root / ".loopin-meta/out/a.json.loopin-meta").is_file()
    monkeypatch.undo()
    assert local_store.head("s3://out/a.json").content_type == "application/x-kept"
    # Written again where attributes work: the sidecar goes, the attribute tells.
    local_store.put("s3://out/a.json", b"[]", content_type="application/x-new")
    assert not (root / ".loopin-meta/out/a.json.loopin-meta").exists()
    assert local_store.head("s3://out/a.json").content_type == "application/x-new"


def test_a_content_type_too_long_for_an_attribute_is_kept_in_a_sidecar(local_store: LocalStore) -> None:
    content_type = "application/x-" + "long" * 2000  # beyond ext4's room for attributes
    local_store.put("s3://out/long", b"x", content_type=content_type)
    assert local_store.head("s3://out/long").content_type == content_type


def test_a_name_too_long_for_a_sidecar_is_still_stored(local_store: LocalStore) -> None:
    uri = "s3://bkt/" + "n" * 250 + ".json"  # fits the filesystem (255), its sidecar's name would not
    local_store.put(uri, b"{}", content_type="application/json")
    assert local_store.get(uri) == b"{}" and local_store.head(uri).content_type == "application/json"
