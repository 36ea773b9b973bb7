"""The console script as a user runs it: help, refusals of bad settings, migrations."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import SCRIPT, run_cli
from tests.support.moto_server import subprocess_env
from tests.support.polling import wait_until
from tests.support.ports import free_port


@pytest.mark.parametrize("command", ["serve", "api", "worker", "migrate"])
def test_every_command_explains_itself(tmp_path: Path, command: str) -> None:
    result = run_cli([command, "--help"], tmp_path)

    assert result.returncode == 0
    assert f"usage: ses-sender {command}" in result.stdout


def test_top_level_help_lists_the_commands(tmp_path: Path) -> None:
    result = run_cli(["--help"], tmp_path)

    assert result.returncode == 0
    for command in ("serve", "api", "worker", "migrate"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"EMAIL_RATE": "-1"}, "ses-sender: EMAIL_RATE: Input should be greater than 0"),
        ({"EMAIL_RATE": "fast"}, "ses-sender: EMAIL_RATE: Input should be a valid number"),
        ({"SERVER_PORT": "70000"}, "ses-sender: SERVER_PORT: Input should be less than or equal"),
        ({"SERVER_HOST": "mail.example.com"}, "ses-sender: SERVER_HOST: must be an absolute"),
        ({"EMAIL_TRANSPORT": "pigeon"}, "ses-sender: EMAIL_TRANSPORT: Input should be 'ses'"),
        ({"EMAIL_TRANSPORT": "smtp"}, "SMTP_HOST is required when EMAIL_TRANSPORT=smtp"),
        ({"DATABASE_URL": "mysql://x"}, "ses-sender: DATABASE_URL: must be a postgresql"),
        ({"TRACKING_SECRET": "short"}, "ses-sender: TRACKING_SECRET: String should have at least"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    result = run_cli(["serve"], tmp_path, **env)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ses-sender: ")
    assert expected in lines[0]


@pytest.mark.parametrize(
    ("command", "env", "expected"),
    [
        (
            "migrate",
            {"DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/x?sslmode=hunter2"},
            "ses-sender: DATABASE_URL: unknown query option 'sslmode'",
        ),
        (
            "api",
            {"DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/x?sslmode=require"},
            "ses-sender: DATABASE_URL: unknown query option 'sslmode'",
        ),
        (
            "doctor",
            {"DATABASE_URL": "postgres://u:hunter2@[::1"},
            "ses-sender: DATABASE_URL: not a valid URL",
        ),
        (
            "worker",
            {"DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:99999/x"},
            "ses-sender: DATABASE_URL: the port must be between 1 and 65535",
        ),
        (
            "serve",
            {"FORWARDED_ALLOW_IPS": "999.1.1.1"},
            "ses-sender: FORWARDED_ALLOW_IPS: entry 1 is not an IP address or network",
        ),
        (
            "api",
            {"SNS_TOPIC_ARNS": "hunter2"},
            "ses-sender: SNS_TOPIC_ARNS: entry 1 is not an SNS topic ARN",
        ),
        (
            "migrate",
            {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x?command_timeout=hunter2"},
            "ses-sender: DATABASE_URL: the query option 'command_timeout' has a value the",
        ),
        *(
            (
                command,
                {"DATABASE_URL": f"postgresql://u:hunter2@127.0.0.1:5432/x?{option}=hunter2"},
                f"ses-sender: DATABASE_URL: the query option '{option}' has a value the",
            )
            for command, option in [
                ("migrate", "prepared_statement_cache_size"),
                ("api", "ssl"),
                ("worker", "gsslib"),
                ("doctor", "statement_cache_size"),
            ]
        ),
        *(
            (
                command,
                {"DATABASE_URL": f"postgresql://u:hunter2@127.0.0.1:5432/x?{option}=hunter2"},
                f"ses-sender: DATABASE_URL: unknown query option '{option}'",
            )
            for command, option in [("serve", "server_settings"), ("migrate", "direct_tls")]
        ),
        *(
            (
                command,
                {"DATABASE_URL": "sqlite://hunter2.db"},
                "ses-sender: DATABASE_URL: an SQLite",
            )
            for command in ("migrate", "api", "worker", "serve", "doctor")
        ),
        *(
            (
                command,
                {"DATABASE_URL": "sqlite:///:memory:"},
                "ses-sender: DATABASE_URL: an in-memory SQLite database cannot be used",
            )
            for command in ("migrate", "api", "worker", "serve", "doctor")
        ),
        (
            "serve",
            {"SNS_TOPIC_ARNS": "arn:aws:sns:xx-fake-1:123456789012:hunter2"},
            "ses-sender: SNS_TOPIC_ARNS: entry 1 names a region where Amazon SNS is not known",
        ),
        (
            "worker",
            {"SNS_TOPIC_ARNS": "arn:aws:sns:us-east-1:123456789012:hunter2.fifo"},
            "ses-sender: SNS_TOPIC_ARNS: entry 1 is a FIFO topic",
        ),
    ],
)
def test_every_command_names_a_bad_setting_in_one_line(
    tmp_path: Path, command: str, env: dict[str, str], expected: str
) -> None:
    result = run_cli([command], tmp_path, **env)

    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(expected)
    assert "hunter2" not in line


def test_settings_are_read_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("EMAIL_RATE=-3\n")

    result = run_cli(["serve"], tmp_path)

    assert result.returncode == 2
    assert "EMAIL_RATE" in result.stderr


def test_ses_without_a_sender_is_refused(tmp_path: Path) -> None:
    result = run_cli(
        ["serve"],
        tmp_path,
        AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
        AWS_SECRET_ACCESS_KEY="secret",
        DB_PATH=str(tmp_path / "app.db"),
    )

    assert result.returncode == 2
    assert "EMAIL_SENDER: required to send through SES" in result.stderr


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'app.db'}"

    first = run_cli(["migrate"], tmp_path, DATABASE_URL=database)
    second = run_cli(["migrate"], tmp_path, DATABASE_URL=database)

    assert first.returncode == second.returncode == 0
    assert "database is at the latest migration" in second.stderr


def test_api_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = run_cli(
        ["api"],
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'new.db'}",
        EMAIL_SENDER="sender@example.com",
    )

    assert result.returncode == 2
    assert "run `ses-sender migrate`" in result.stderr


def test_the_seed_sqlite_path_is_honoured(tmp_path: Path) -> None:
    result = run_cli(["migrate"], tmp_path, DB_PATH=str(tmp_path / "seed" / "app.db"))

    assert result.returncode == 0
    assert (tmp_path / "seed" / "app.db").exists()


def test_no_environment_leaks_into_subprocesses() -> None:
    assert "AWS_EC2_METADATA_DISABLED" in subprocess_env()
    assert os.environ.get("AWS_EC2_METADATA_DISABLED") == "true"


def test_an_unreachable_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = run_cli(["api"], tmp_path, DATABASE_URL="postgresql://postgres@127.0.0.1:1/nothing")

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("ses-sender: the database is unreachable: ")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://postgres@127.0.0.1:1/nothing", "the database is unreachable: "),
        (
            "postgresql://no_such_role@127.0.0.1:5432/postgres",
            'the database is unreachable: role "no_such_role" does not exist',
        ),
    ],
)
def test_migrate_says_why_the_database_cannot_be_reached_in_one_line(
    tmp_path: Path, url: str, reason: str
) -> None:
    result = run_cli(["migrate"], tmp_path, DATABASE_URL=url)

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"ses-sender: {reason}")


async def test_the_api_warns_at_start_up_of_no_trusted_topic_and_dead_links(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "SERVER_PORT": str(free_port())}
    assert run_cli(["migrate"], tmp_path, **env).returncode == 0
    log = tmp_path / "api.log"
    with log.open("w") as output:
        api = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
            [str(SCRIPT), "api"],
            cwd=tmp_path,
            env=subprocess_env() | env,
            stdout=output,
            stderr=output,
        )

    async def warned() -> bool:
        assert api.poll() is None, log.read_text()
        return "no SNS topic is trusted" in log.read_text()

    try:
        await wait_until(warned, "the start-up warning")
    finally:
        api.terminate()
        await asyncio.to_thread(api.wait, 30)
    assert (
        "no SNS topic is trusted, so every SES event and subscription confirmation is refused: "
        "run `ses-sender setup-aws` (it records the topic it wires) or set SNS_TOPIC_ARNS"
    ) in log.read_text()
    # Only the port was changed: SERVER_HOST still says localhost:3000.
    assert (
        f"SERVER_HOST names this machine on port 3000 but SERVER_PORT is {env['SERVER_PORT']}: "
        "the tracking and unsubscribe links in mail lead nowhere"
    ) in log.read_text()


def test_stats_verify_recounts_the_counters(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/verify.db"
    assert run_cli(["migrate"], tmp_path, DATABASE_URL=database).returncode == 0

    every = run_cli(["stats", "verify"], tmp_path, DATABASE_URL=database)
    one = run_cli(["stats", "verify", "spring/sale"], tmp_path, DATABASE_URL=database)

    assert (every.returncode, one.returncode) == (0, 0)
    assert "every topic: 0 requests recounted; every counter matches" in every.stdout
    assert "topic 'spring/sale': 0 requests recounted" in one.stdout
