"""Every setting of loopin, declared once.

Values come from (lowest to highest precedence) the defaults below, an optional TOML
config file (``LOOPIN_CONFIG`` or ``--config``), and ``LOOPIN_<NAME>`` environment
variables. Nothing here touches the disk at import; ``Settings.load`` reads, and
``ensure_secret_key`` creates the secret on first start.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from loopin.arns import arn
from loopin.errors import LoopinError
from loopin.validation import check_origins

ENV_PREFIX = "LOOPIN_"


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if needed, and make it readable by its owner only
    (0700), whatever the umask: it holds password hashes, task inputs and answers."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)


def private_file(path: Path) -> None:
    """Create ``path`` empty if it does not exist, and make it 0600 either way."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Field(
        default=Path("./loopin-data"),
        description="Folder for the SQLite database, the local object store and the secret key.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the database. Empty: a SQLite file in the data directory. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/dbname",
    )
    store_root: Path | None = Field(
        default=None,
        description="Folder of the local object store. Empty: <data_dir>/objects. Buckets are "
        "sub-folders: s3://bucket/key is stored at <store_root>/bucket/key.",
    )
    s3_endpoint_url: str = Field(
        default="",
        description="Use an external S3-compatible store at this URL for s3:// locations instead "
        "of the local folder. Empty with s3_use_aws=false: the local folder.",
    )
    s3_use_aws: bool = Field(
        default=False,
        description="Use AWS S3 itself (boto3's default endpoint) for s3:// locations.",
    )
    s3_region: str = Field(default="us-east-1", description="Region for the external S3 store.")
    s3_access_key_id: str = Field(
        default="", description="Access key for the external S3 store (empty: boto3's chain)."
    )
    s3_secret_access_key: str = Field(
        default="", description="Secret key for the external S3 store (empty: boto3's chain)."
    )
    host: str = Field(default="127.0.0.1", description="Address `loopin serve` listens on.")
    port: int = Field(default=8321, ge=0, le=65535, description="Port `loopin serve` listens on.")
    public_url: str = Field(
        default="",
        description="Base URL users reach the server at (links, signed URLs). Empty: http://<host>:<port>.",
    )
    region: str = Field(default="us-east-1", description="Region used in ARNs.")
    account_id: str = Field(default="000000000000", description="12-digit account id used in ARNs.")
    secret_key: str = Field(
        default="",
        description="Key that signs sessions and URLs and encrypts access-key secrets. Empty: "
        "generated on first start into <data_dir>/secret_key (mode 0600) and reused.",
    )
    routing_image_location: str = Field(
        default="s3://loopin-inputs/images",
        description="Where images routed to human review are stored (s3://bucket/prefix); the loop's "
        "taskObject points there.",
    )
    inference_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="onnxruntime threads per inference. 1 suits small machines: concurrent requests "
        "already use the cores in parallel.",
    )
    max_image_pixels: int = Field(
        default=25_000_000,
        ge=1,
        le=100_000_000,
        description="Largest image (width x height) an invocation may send; checked from the header "
        "before any pixel is decoded. A decoded image takes 3 bytes a pixel.",
    )
    image_decode_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Images each server process decodes at once; further invocations wait. With "
        "max_image_pixels this bounds the memory that decoding takes.",
    )
    max_model_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=1,
        description="Largest ONNX model file an endpoint may load (bytes). Model sources must be regular "
        "files or stored objects; a larger one, a device or a pipe fails the endpoint instead of being read.",
    )
    model_load_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Time a user's ONNX model has to load and run once (in a child process) before the "
        "server loads it; a slower one fails its endpoint.",
    )
    model_load_memory_bytes: int = Field(
        default=4 * 1024 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory a user's ONNX model may take to load and run once, beyond the runtime's own "
        "(checked in a child process before the server loads it); a model that needs more fails its endpoint.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="How long a webhook receiver has to answer one delivery."
    )
    webhook_retry_horizon_seconds: int = Field(
        default=86_400,
        ge=1,
        description="How long a failing delivery is retried (exponential back-off with jitter) before it "
        "goes to the dead-letter list.",
    )
    aws_allow_unsigned: bool = Field(
        default=False,
        description="Development only: also accept unsigned or wrongly signed AWS API requests "
        "(SageMaker, A2I runtime, SageMaker runtime, S3), logging each. Never on a server others can reach.",
    )
    job_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often each server process runs the periodic jobs (lease expiry, "
        "availability expiry, output retries).",
    )
    batch_workers: int = Field(
        default=0,
        ge=0,
        description="Images a batch job runs at once in each server process (threads over onnxruntime, "
        "which releases the GIL). 0: the number of CPU cores. An endpoint's instance count also bounds it.",
    )
    batch_lease_seconds: int = Field(
        default=60,
        ge=5,
        description="How long a server process holds a batch job before another may take it over "
        "(renewed while it works; a crashed process's job is resumed when its lease runs out).",
    )
    input_locations: tuple[str, ...] = Field(
        default=(),
        description="Where the tasks of a flow without input locations of its own may point (s3:// "
        "prefixes, separated by spaces or commas), besides the flow's own output bucket and the routed "
        "images' bucket. Empty: with the local store, any location outside the flows' output locations; "
        "with an S3 store, only those two buckets.",
    )
    batch_local_roots: tuple[str, ...] = Field(
        default=(),
        description="Local folders (absolute paths, separated by spaces or commas) a batch job may read "
        "images and manifests from, besides the data directory. Empty: the data directory only.",
    )
    signed_url_ttl_seconds: int = Field(
        default=900, ge=1, le=7 * 24 * 3600, description="Lifetime of signed read URLs for stored objects."
    )
    worker_token_ttl_seconds: int = Field(default=12 * 3600, ge=60, description="Lifetime of a worker's sign-in token.")
    db_pool_size: int = Field(default=20, ge=1, description="Database connections each server process may hold.")
    admin_session_ttl_seconds: int = Field(
        default=8 * 3600, ge=60, description="Lifetime of an admin's sign-in to the admin console."
    )
    task_frame_origins: tuple[str, ...] = Field(
        default=(),
        description="Extra origins (https://host[:port], separated by spaces or commas) every task frame "
        "may load scripts, styles, fonts, images, media and frames from, e.g. a CDN a template's library "
        "comes from. Empty: none (a flow may add its own). loopin's own signed object URLs need no entry.",
    )
    smtp_host: str = Field(
        default="",
        description="SMTP server for worker invitations. Empty: no e-mail is sent; the admin console "
        "shows the invitation links for the admin to hand over.",
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP server port.")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="How to secure the SMTP connection: 'starttls' (port 587), 'tls' (implicit TLS, "
        "port 465) or 'none' (a local relay only).",
    )
    smtp_username: str = Field(default="", description="SMTP user name; empty to send without signing in.")
    smtp_password: str = Field(default="", description="SMTP password.")
    smtp_from: str = Field(
        default="",
        description="Sender of invitation e-mails, e.g. 'Review team <review@example.com>'. Empty: the SMTP "
        "user name if it is an e-mail address, else loopin@<host of the public URL>.",
    )

    @model_validator(mode="after")
    def _no_smtp_password_in_clear(self) -> Settings:
        local = self.smtp_host in ("localhost", "127.0.0.1", "::1")
        if self.smtp_security == "none" and self.smtp_password and not local:
            raise ValueError(
                "smtp_security 'none' would send the SMTP password unencrypted over the network: "
                "use 'starttls' or 'tls' (plain connections are for a relay on this machine)"
            )
        return self

    @field_validator("task_frame_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        value = _listed(value)
        try:
            return tuple(check_origins(value, what="task_frame_origins entry"))
        except LoopinError as exc:
            raise ValueError(exc.message) from exc

    @field_validator("batch_local_roots", mode="before")
    @classmethod
    def _roots(cls, value: Any) -> Any:
        value = _listed(value)
        roots = tuple(str(v) for v in value)
        for root in roots:
            if not os.path.isabs(root):
                raise ValueError(f"batch_local_roots entry '{root}' is not an absolute path.")
        return roots

    @field_validator("input_locations", mode="before")
    @classmethod
    def _input_locations(cls, value: Any) -> Any:
        value = _listed(value)
        locations = tuple(str(v) for v in value)
        for location in locations:
            if not location.startswith("s3://") or len(location) <= len("s3://"):
                raise ValueError(f"input_locations entry '{location}' is not an s3:// location.")
        return locations

    @field_validator("account_id")
    @classmethod
    def _twelve_digits(cls, value: str) -> str:
        if len(value) != 12 or not value.isdigit():
            raise ValueError("account_id must be exactly 12 digits")
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'loopin.db').resolve()}"

    @property
    def resolved_store_root(self) -> Path:
        return (self.store_root or self.data_dir / "objects").resolve()

    def arn(self, kind: str, name: str) -> str:
        """The ARN of a resource of this server (its region and account)."""
        return arn(self.region, self.account_id, kind, name)

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def uses_external_s3(self) -> bool:
        return bool(self.s3_endpoint_url) or self.s3_use_aws

    @classmethod
    def load(
        cls,
        *,
        config_file: Path | None = None,
        environ: dict[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Defaults < config file < environment < explicit overrides."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        path = config_file or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
        if path is not None:
            with open(path, "rb") as fh:
                values.update(tomllib.load(fh))
        for name in cls.model_fields:
            key = ENV_PREFIX + name.upper()
            if key in env:
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def ensure_secret_key(self) -> Settings:
        """Return settings with a secret key, creating ``<data_dir>/secret_key`` if needed.
        Also makes the data directory private (0700)."""
        private_dir(self.data_dir)
        if self.secret_key:
            return self
        path = self.data_dir / "secret_key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_text().strip()
        else:
            key = secrets.token_urlsafe(48)
            with os.fdopen(fd, "w") as fh:
                fh.write(key + "\n")
        return self.model_copy(update={"secret_key": key})


def _listed(value: Any) -> Any:
    """A list setting given as one string (an environment variable): items separated by
    spaces or commas."""
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    return value
