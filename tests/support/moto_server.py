"""moto in server mode, in a subprocess on a free loopback port, for tests that talk real HTTP.

moto emulates SES well enough for SendEmail (Simple and Raw) but needs the sender verified first,
drops Simple Headers/EmailTags/ConfigurationSetName, never throttles and has no sesv2 GetAccount:
use `tests.support.ses_stub` for those.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import cached_property
from typing import IO, Any

import boto3  # type: ignore[import-untyped]
from botocore.exceptions import ClientError

from tests.support.ports import free_port

HOST = "127.0.0.1"
REGION = "us-east-1"
STARTUP_TIMEOUT_S = 30.0

# Explicit fake credentials, no config files and no instance metadata: botocore must never look
# beyond loopback for credentials (169.254.169.254) or pick up a developer's profile.
FAKE_AWS_ENV: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "NO_PROXY": f"{HOST},localhost",
    "no_proxy": f"{HOST},localhost",
}

# urllib would otherwise honour HTTP(S)_PROXY, even for loopback.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def subprocess_env() -> dict[str, str]:
    """This process's environment with every AWS_* variable replaced by `FAKE_AWS_ENV`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(FAKE_AWS_ENV)
    return env


class MotoServer:
    """A running moto_server: its URL, plus the calls tests make against it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        _request("POST", f"{self.url}/moto-api/reset")

    def data(self) -> dict[str, Any]:
        """Every model moto holds (all accounts and regions), as `GET /moto-api/data.json`."""
        data: dict[str, Any] = json.loads(_request("GET", f"{self.url}/moto-api/data.json"))
        return data

    def sent_messages(self) -> list[dict[str, Any]]:
        """Simple sends (v1 and v2 share this list): `{id, source, destinations, subject, body}`."""
        messages: list[dict[str, Any]] = self.data().get("ses", {}).get("Message", [])
        return messages

    def verify_identity(self, identity: str) -> None:
        """Make an address or domain a verified sender; moto rejects mail from anything else."""
        try:
            self._sesv2.create_email_identity(EmailIdentity=identity)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "AlreadyExistsException":
                raise

    def close(self) -> None:
        if "_sesv2" in self.__dict__:
            self._sesv2.close()

    @cached_property
    def _sesv2(self) -> Any:
        return boto3.client(
            "sesv2",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )


@contextlib.contextmanager
def run_moto_server() -> Iterator[MotoServer]:
    """Start moto_server, wait until it answers, yield it; terminate it on exit."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
            env=subprocess_env(),
            stdin=subprocess.DEVNULL,
            # A file, not a pipe: moto logs every request, and a full pipe would stall it.
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = MotoServer(f"http://{HOST}:{port}")
        try:
            _wait_until_ready(server, process, log)
            yield server
        finally:
            server.close()
            _stop(process)


def _wait_until_ready(server: MotoServer, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")
            raise RuntimeError(f"moto_server exited with {process.returncode}:\n{output}")
        try:
            server.data()
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
        else:
            return
    raise TimeoutError(f"moto_server did not answer on {server.url} in {STARTUP_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _request(method: str, url: str) -> bytes:
    request = urllib.request.Request(url, method=method)
    with _opener.open(request, timeout=10) as response:
        body: bytes = response.read()
        return body
