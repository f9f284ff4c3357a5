"""Object storage for backups and archived evidence: S3 (boto3) or a local directory, one interface.

Thin on purpose: it stores, reads, lists and describes objects, and says nothing about whether a
backup is good (that is :mod:`drp.domain.backup`). boto3's exceptions become
:class:`ObjectStoreError` with a sentence that names the bucket and key. Credentials are never
passed around here: boto3 reads the standard ``AWS_*`` variables (or a profile, or an instance
role) itself, so no secret ever sits in our settings, logs or ledgers.

Uploads use multipart transfers with SHA-256 checksums (``ChecksumAlgorithm=SHA256``), so that
S3 itself checks every part on arrival; the SHA-256 of the whole file, which our manifests
compare, is computed by the caller and stored as object metadata (``sha256``). An upload may ask
for an Object Lock (compliance mode, retain-until date): used for evidence.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from drp.errors import AdapterError

CHUNK = 8 * 1024 * 1024
"""Multipart part size and read size (S3's minimum part is 5 MiB)."""

LOCAL_VERSION = "local"
"""The only version a local directory keeps."""


class ObjectStoreError(AdapterError):
    """The object store refused or could not be reached."""


class ObjectMissing(ObjectStoreError):
    """The object (or version) asked for does not exist."""


@dataclass(frozen=True)
class Lock:
    """An Object Lock to put on an upload: mode (COMPLIANCE or GOVERNANCE) and until when."""

    mode: str
    retain_until: datetime


@dataclass(frozen=True)
class StoredObject:
    """What the store says about one object (or one version of it)."""

    key: str
    size: int
    version_id: str | None = None
    sha256: str | None = None  # from our metadata, when the object has it
    last_modified: datetime | None = None
    is_latest: bool = True
    lock_mode: str | None = None
    retain_until: datetime | None = None


class Repository(Protocol):
    """What backups and the evidence archive need from a store."""

    def describe(self, key: str = "") -> str: ...
    def put_file(
        self, key: str, path: Path, *, sha256: str | None = None, lock: Lock | None = None
    ) -> StoredObject: ...
    def put_bytes(self, key: str, data: bytes, *, lock: Lock | None = None) -> StoredObject: ...
    def open(self, key: str, version_id: str | None = None) -> Any: ...
    def get_bytes(self, key: str, version_id: str | None = None) -> bytes: ...
    def head(self, key: str, version_id: str | None = None) -> StoredObject | None: ...
    def list(self, prefix: str) -> list[StoredObject]: ...
    def versions(self, key: str) -> list[StoredObject]: ...
    def delete(self, key: str, version_id: str | None = None) -> None: ...
    def copy(self, source_key: str, target_key: str) -> None: ...


def sha256_file(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in large chunks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --------------------------------------------------------------------------------------------
# S3


@contextmanager
def _s3_errors(action: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message") or str(exc)
        if code in ("NoSuchKey", "404", "NoSuchVersion", "NotFound"):
            raise ObjectMissing(f"cannot {action}: not found ({code})") from exc
        hint = {
            "AccessDenied": "the object is locked or the credentials may not do this",
            "NoSuchBucket": "create the bucket (with Object Lock enabled for evidence)",
            "InvalidAccessKeyId": "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
            "SignatureDoesNotMatch": "check AWS_SECRET_ACCESS_KEY",
        }.get(code, "check DRP_S3_ENDPOINT_URL, the bucket and the credentials")
        raise ObjectStoreError(f"cannot {action}: {code} {message} (hint: {hint})") from exc
    except BotoCoreError as exc:
        raise ObjectStoreError(
            f"cannot {action}: {exc} (hint: is the S3 endpoint reachable? DRP_S3_ENDPOINT_URL)"
        ) from exc


def s3_client(endpoint_url: str | None, region: str | None) -> Any:
    """A boto3 S3 client; credentials come from boto3's own chain (AWS_* variables, profile)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_supported",
    )
    return boto3.client(
        "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
    )


class S3Repository:
    """A bucket in S3-compatible storage."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def connect(cls, endpoint_url: str | None, region: str | None, bucket: str) -> S3Repository:
        return cls(s3_client(endpoint_url, region), bucket)

    def describe(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def _lock_args(self, lock: Lock | None) -> dict[str, Any]:
        if lock is None:
            return {}
        return {"ObjectLockMode": lock.mode, "ObjectLockRetainUntilDate": lock.retain_until}

    def put_file(
        self, key: str, path: Path, *, sha256: str | None = None, lock: Lock | None = None
    ) -> StoredObject:
        """Upload a file (multipart beyond one chunk, SHA-256 checksummed parts)."""
        from boto3.s3.transfer import TransferConfig

        if sha256 is None:
            sha256, _ = sha256_file(path)
        extra: dict[str, Any] = {
            "ChecksumAlgorithm": "SHA256",
            "Metadata": {"sha256": sha256},
            **self._lock_args(lock),
        }
        config = TransferConfig(
            multipart_threshold=CHUNK, multipart_chunksize=CHUNK, max_concurrency=4
        )
        with _s3_errors(f"upload {path} to {self.describe(key)}"):
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs=extra, Config=config)
        found = self.head(key)
        if found is None:
            raise ObjectStoreError(f"{self.describe(key)} is not there right after its upload")
        return found

    def put_bytes(self, key: str, data: bytes, *, lock: Lock | None = None) -> StoredObject:
        """Store a small object in one request; returns its version."""
        digest = hashlib.sha256(data).hexdigest()
        with _s3_errors(f"write {self.describe(key)}"):
            answer = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ChecksumAlgorithm="SHA256",
                Metadata={"sha256": digest},
                **self._lock_args(lock),
            )
        return StoredObject(
            key=key,
            size=len(data),
            version_id=answer.get("VersionId"),
            sha256=digest,
            lock_mode=lock.mode if lock else None,
            retain_until=lock.retain_until if lock else None,
        )

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        """A stream of the object's bytes (read it in chunks; close it)."""
        args = {"VersionId": version_id} if version_id else {}
        with _s3_errors(f"read {self.describe(key)}"):
            return self.client.get_object(Bucket=self.bucket, Key=key, **args)["Body"]

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        body = self.open(key, version_id)
        with _s3_errors(f"read {self.describe(key)}"):
            try:
                return body.read()
            finally:
                body.close()

    def head(self, key: str, version_id: str | None = None) -> StoredObject | None:
        args = {"VersionId": version_id} if version_id else {}
        try:
            with _s3_errors(f"look up {self.describe(key)}"):
                meta = self.client.head_object(Bucket=self.bucket, Key=key, **args)
        except ObjectMissing:
            return None
        return StoredObject(
            key=key,
            size=int(meta["ContentLength"]),
            version_id=meta.get("VersionId"),
            sha256=(meta.get("Metadata") or {}).get("sha256"),
            last_modified=meta.get("LastModified"),
            lock_mode=meta.get("ObjectLockMode"),
            retain_until=meta.get("ObjectLockRetainUntilDate"),
        )

    def list(self, prefix: str) -> list[StoredObject]:
        found: list[StoredObject] = []
        with _s3_errors(f"list {self.describe(prefix)}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found.append(
                        StoredObject(
                            key=item["Key"],
                            size=int(item["Size"]),
                            last_modified=item.get("LastModified"),
                        )
                    )
        return found

    def versions(self, key: str) -> list[StoredObject]:
        """Every version of ``key``, newest first."""
        found: list[StoredObject] = []
        with _s3_errors(f"list the versions of {self.describe(key)}"):
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=key
            )
            for page in pages:
                for item in page.get("Versions", []):
                    if item["Key"] != key:
                        continue
                    found.append(
                        StoredObject(
                            key=key,
                            size=int(item["Size"]),
                            version_id=item.get("VersionId"),
                            last_modified=item.get("LastModified"),
                            is_latest=bool(item.get("IsLatest")),
                        )
                    )
        return found  # S3 lists the versions of a key newest first

    def delete(self, key: str, version_id: str | None = None) -> None:
        args = {"VersionId": version_id} if version_id else {}
        with _s3_errors(f"delete {self.describe(key)}"):
            self.client.delete_object(Bucket=self.bucket, Key=key, **args)

    def copy(self, source_key: str, target_key: str) -> None:
        with _s3_errors(f"copy {self.describe(source_key)} to {target_key}"):
            self.client.copy({"Bucket": self.bucket, "Key": source_key}, self.bucket, target_key)

    def ensure_bucket(self, *, object_lock: bool = False) -> None:
        """Create the bucket when it is missing (lab and tests; production buckets are made by
        their owners, with Object Lock for evidence)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError:
            pass
        with _s3_errors(f"create bucket {self.bucket}"):
            args = {"ObjectLockEnabledForBucket": True} if object_lock else {}
            self.client.create_bucket(Bucket=self.bucket, **args)
            if not object_lock:
                self.client.put_bucket_versioning(
                    Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"}
                )


# --------------------------------------------------------------------------------------------
# A local directory


class LocalRepository:
    """A directory that stores objects as files under their keys.

    For a site without object storage (a mounted NAS, say). It keeps one version of each key and
    has no Object Lock: evidence archives need S3.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def _path(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root.resolve()) or not key:
            raise ObjectStoreError(f"{key!r} is not a key inside {self.root}")
        return target

    def _refuse_lock(self, lock: Lock | None) -> None:
        if lock is not None:
            raise ObjectStoreError(
                f"{self.root} is a local directory: it has no Object Lock (use an S3 bucket "
                "with Object Lock for evidence)"
            )

    def put_file(
        self, key: str, path: Path, *, sha256: str | None = None, lock: Lock | None = None
    ) -> StoredObject:
        self._refuse_lock(lock)
        target = self._path(key)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, tmp)
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise ObjectStoreError(f"cannot store {path} at {target}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return StoredObject(key, target.stat().st_size, LOCAL_VERSION, sha256)

    def put_bytes(self, key: str, data: bytes, *, lock: Lock | None = None) -> StoredObject:
        self._refuse_lock(lock)
        target = self._path(key)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise ObjectStoreError(f"cannot write {target}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return StoredObject(key, len(data), LOCAL_VERSION, hashlib.sha256(data).hexdigest())

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        self._version(key, version_id)
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(f"cannot read {self.describe(key)}: not found") from exc
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {self.describe(key)}: {exc}") from exc

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        with self.open(key, version_id) as fh:
            return fh.read()

    def _version(self, key: str, version_id: str | None) -> None:
        if version_id not in (None, LOCAL_VERSION):
            raise ObjectMissing(f"{self.describe(key)} keeps no version {version_id!r}")

    def head(self, key: str, version_id: str | None = None) -> StoredObject | None:
        try:
            self._version(key, version_id)
            stat = self._path(key).stat()
        except (ObjectMissing, FileNotFoundError):
            return None
        return StoredObject(key, stat.st_size, LOCAL_VERSION)

    def list(self, prefix: str) -> list[StoredObject]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and key.startswith(prefix) and not path.name.startswith("."):
                found.append(StoredObject(key, path.stat().st_size, LOCAL_VERSION))
        return found

    def versions(self, key: str) -> list[StoredObject]:
        found = self.head(key)
        return [found] if found else []

    def delete(self, key: str, version_id: str | None = None) -> None:
        self._version(key, version_id)
        try:
            self._path(key).unlink()
        except FileNotFoundError as exc:
            raise ObjectMissing(f"cannot delete {self.describe(key)}: not found") from exc

    def copy(self, source_key: str, target_key: str) -> None:
        target = self._path(target_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(self._path(source_key), target)
        except OSError as exc:
            raise ObjectStoreError(f"cannot copy {source_key} to {target_key}: {exc}") from exc
