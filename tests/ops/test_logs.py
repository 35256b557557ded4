"""`dl logs` against moto's CloudWatch Logs: events written with put_log_events, read back as lines."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from click.testing import CliRunner

import dl.commands.logs
import dl.ops.logs
from dl.aws.names import log_group_name
from dl.cli import main
from dl.ops.logs import fetch_events, logs_client, parse_since, read_logs

GROUP = "/aws/lambda/demo-site"
MINUTE_MS = 60_000

REPORT = (
    "REPORT RequestId: 3f0c2a4e-1b5d-4c9a-9e7f-0a1b2c3d4e5f\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
    "Memory Size: 1024 MB\tMax Memory Used: 98 MB\tInit Duration: 812.40 ms\t\n"
)


def now_ms() -> int:
    return int(time.time() * 1000)


# CloudWatch rejects events older than 14 days: fixed times are yesterday's, at midnight UTC.
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).date()
MIDNIGHT_MS = int(datetime(YESTERDAY.year, YESTERDAY.month, YESTERDAY.day, tzinfo=UTC).timestamp() * 1000)
DAY = YESTERDAY.isoformat()


@pytest.fixture
def logs(aws):
    """A moto CloudWatch Logs client with the instance's log group and one stream."""
    client = boto3.client("logs")
    client.create_log_group(logGroupName=GROUP)
    client.create_log_stream(logGroupName=GROUP, logStreamName="2024/05/01/[$LATEST]abc")
    return client


def put(client, *events: tuple[int, str], stream: str = "2024/05/01/[$LATEST]abc") -> None:
    """Write (timestamp ms, message) events to a stream."""
    batch = [{"timestamp": ts, "message": msg} for ts, msg in sorted(events)]
    client.put_log_events(logGroupName=GROUP, logStreamName=stream, logEvents=batch)


@pytest.fixture
def project(tmp_path, db_factory, monkeypatch):
    """A manifest for project `demo` with instance `site`; the working directory holds it."""
    db_factory("data.db")
    (tmp_path / "datasette-lambda.yml").write_text(
        "project: demo\ninstances:\n  site:\n    databases: [data.db]\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str):
    """`dl logs ARGS` through the real CLI group (its error handling included)."""
    return CliRunner().invoke(main, ["logs", *args], catch_exceptions=False)


def lines(client, start_ms: int, pattern: str | None = None) -> list[str]:
    return list(read_logs(client, GROUP, start_ms, pattern))


def test_log_group_is_named_after_the_instance_stack():
    assert log_group_name("demo", "site") == "/aws/lambda/demo-site"


def test_events_print_with_utc_millisecond_time_in_order(logs):
    t = MIDNIGHT_MS + 123
    put(logs, (t + 5, "second"), (t, "first"))
    assert lines(logs, t - MINUTE_MS) == [f"{DAY}T00:00:00.123Z first", f"{DAY}T00:00:00.128Z second"]


def test_events_from_several_streams_are_interleaved_by_time(logs):
    t = now_ms() - MINUTE_MS
    logs.create_log_stream(logGroupName=GROUP, logStreamName="other")
    put(logs, (t, "a1"), (t + 20, "a3"))
    put(logs, (t + 10, "b2"), stream="other")
    assert [line.split(" ", 1)[1] for line in lines(logs, t - 1)] == ["a1", "b2", "a3"]


def test_platform_lines_are_shortened_and_start_end_dropped(logs):
    t = now_ms() - MINUTE_MS
    put(
        logs,
        (
            t,
            "INIT_START Runtime Version: python:3.13.v16\tRuntime Version ARN: arn:aws:lambda:eu-west-1::x\n",
        ),
        (t + 1, "START RequestId: 3f0c2a4e-1b5d-4c9a-9e7f-0a1b2c3d4e5f Version: $LATEST\n"),
        (t + 2, "GET /data/items 200\n"),
        (t + 3, "END RequestId: 3f0c2a4e-1b5d-4c9a-9e7f-0a1b2c3d4e5f\n"),
        (t + 4, REPORT),
    )
    assert [line.split(" ", 1)[1] for line in lines(logs, t - 1)] == [
        "INIT_START python:3.13.v16",
        "GET /data/items 200",
        "REPORT duration=12.3ms billed=13ms init=812.4ms memory=98/1024MB",
    ]


def test_report_of_a_timed_out_warm_invocation():
    message = (
        "REPORT RequestId: abc\tDuration: 30000.00 ms\tBilled Duration: 30000 ms\tMemory Size: 512 MB\t"
        "Max Memory Used: 200 MB\tStatus: timeout"
    )
    assert dl.ops.logs.shorten_message(message) == (
        "REPORT duration=30000.0ms billed=30000ms memory=200/512MB status=timeout"
    )


def test_json_log_format_platform_events_are_shortened_too():
    report = (
        '{"time":"2024-05-01T12:00:00.000Z","type":"platform.report","record":{"requestId":"abc",'
        '"metrics":{"durationMs":12.34,"billedDurationMs":13,"memorySizeMB":1024,"maxMemoryUsedMB":98,'
        '"initDurationMs":812.4},"status":"success"}}'
    )
    start = '{"time":"2024-05-01T12:00:00.000Z","type":"platform.start","record":{"requestId":"abc"}}'
    app = '{"timestamp":"2024-05-01T12:00:00Z","level":"ERROR","message":"boom","requestId":"abc"}'
    assert (
        dl.ops.logs.shorten_message(report)
        == "REPORT duration=12.3ms billed=13ms init=812.4ms memory=98/1024MB"
    )
    assert dl.ops.logs.shorten_message(start) is None
    assert dl.ops.logs.shorten_message(app) == "ERROR boom"


def test_terminal_escape_sequences_and_controls_are_stripped(logs):
    t = now_ms() - MINUTE_MS
    put(
        logs,
        (
            t,
            "\x1b[31mred\x1b[0m \x1b]0;pwned title\x07text\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ bell\x07\x9b2J",
        ),
    )
    [line] = lines(logs, t - 1)
    assert line.endswith(" red textlink bell")
    assert not any(ch in line for ch in "\x1b\x07\x9b")


def test_multi_line_messages_become_indented_continuation_lines(logs):
    t = MIDNIGHT_MS
    put(logs, (t, '[ERROR] boom\rTraceback (most recent call last):\r  File "x.py"\n'))
    assert lines(logs, t - 1) == [
        f"{DAY}T00:00:00.000Z [ERROR] boom\n"
        "                         Traceback (most recent call last):\n"
        '                           File "x.py"'
    ]


def test_filter_narrows_to_matching_events(logs):
    t = now_ms() - MINUTE_MS
    put(logs, (t, "INFO all good"), (t + 1, "ERROR database locked"), (t + 2, "INFO fine again"))
    assert [line.split(" ", 1)[1] for line in lines(logs, t - 1, "ERROR")] == ["ERROR database locked"]
    quoted = lines(logs, t - 1, '"fine again"')
    assert [line.split(" ", 1)[1] for line in quoted] == ["INFO fine again"]


def test_many_events_are_read_across_pages(logs):
    # filter_log_events returns at most 10,000 events a page (moto and AWS alike): cross a page boundary.
    t = now_ms() - 10 * MINUTE_MS
    put(logs, *((t + i, f"event {i}") for i in range(6000)))
    put(logs, *((t + i, f"event {i}") for i in range(6000, 10_050)))
    events = list(fetch_events(logs, GROUP, t - 1))
    assert len(events) == 10_050
    assert events[-1].message == "event 10049"


def test_since_excludes_older_events(logs, project):
    put(logs, (now_ms() - 3 * 60 * MINUTE_MS, "three hours ago"), (now_ms() - 5 * MINUTE_MS, "recent"))
    result = run("site", "--since", "1h")
    assert result.exit_code == 0, result.output
    assert [line.split(" ", 1)[1] for line in result.output.splitlines()] == ["recent"]
    result = run("site", "--since", "4h")
    assert [line.split(" ", 1)[1] for line in result.output.splitlines()] == ["three hours ago", "recent"]


def test_cli_filter_and_default_since_of_ten_minutes(logs, project):
    put(
        logs,
        (now_ms() - 20 * MINUTE_MS, "ERROR too old for the default window"),
        (now_ms() - 2 * MINUTE_MS, "ERROR recent failure"),
        (now_ms() - MINUTE_MS, "INFO recent success"),
    )
    result = run("site", "--filter", "ERROR")
    assert result.exit_code == 0, result.output
    assert [line.split(" ", 1)[1] for line in result.output.splitlines()] == ["ERROR recent failure"]


def test_since_accepts_an_iso_time_with_or_without_zone(logs, project):
    t = MIDNIGHT_MS + 12 * 60 * MINUTE_MS  # yesterday, 12:00 UTC
    put(logs, (t - MINUTE_MS, "before"), (t + MINUTE_MS, "after"))
    for since in (f"{DAY}T12:00:00Z", f"{DAY}T12:00:00", f"{DAY}T14:00:00+02:00", f"{DAY} 12:00"):
        result = run("site", "--since", since)
        assert result.output.splitlines() == [f"{DAY}T12:01:00.000Z after"], since


@pytest.mark.parametrize(
    ("text", "expected_ms_ago"),
    [("45s", 45_000), ("10m", 600_000), ("2h", 7_200_000), ("3d", 259_200_000), ("1w", 604_800_000)],
)
def test_since_durations(text, expected_ms_ago):
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_since(text, now) == int(now.timestamp() * 1000) - expected_ms_ago


@pytest.mark.parametrize("bad", ["10x", "yesterday", "-5m", "2024-13-01", ""])
def test_bad_since_is_a_usage_error(project, bad):
    result = run("site", "--since", bad)
    assert result.exit_code == 2
    assert "--since" in result.output
    assert "neither a duration" in result.output


def test_missing_log_group_says_the_instance_was_not_deployed(aws, project):
    result = run("site")
    assert result.exit_code == 1
    assert "no logs yet for instance site" in result.output
    assert "/aws/lambda/demo-site" in result.output
    assert "has it been deployed?" in result.output
    assert "Traceback" not in result.output


def test_unknown_instance_names_the_known_ones(aws, project):
    result = run("sight")
    assert result.exit_code == 2
    assert "no instance 'sight'" in result.output
    assert "did you mean 'site'?" in result.output


def test_manifest_region_is_used(aws, tmp_path, db_factory, monkeypatch):
    db_factory("data.db")
    (tmp_path / "m.yml").write_text(
        "project: demo\nregion: us-east-2\ninstances:\n  site:\n    databases: [data.db]\n"
    )
    client = boto3.client("logs", region_name="us-east-2")
    client.create_log_group(logGroupName=GROUP)
    client.create_log_stream(logGroupName=GROUP, logStreamName="s")
    client.put_log_events(
        logGroupName=GROUP, logStreamName="s", logEvents=[{"timestamp": now_ms(), "message": "in ohio"}]
    )
    result = run("site", "-f", str(tmp_path / "m.yml"))
    assert result.output.split(" ", 1)[1] == "in ohio\n"


def test_follow_polls_for_new_events_without_repeating_and_stops_cleanly_on_ctrl_c(
    logs, project, monkeypatch
):
    t = now_ms() - MINUTE_MS
    put(logs, (t, "before following"))
    polls = []

    def sleep(seconds):
        polls.append(seconds)
        if len(polls) == 1:
            put(logs, (now_ms(), "arrived while following"))
        elif len(polls) == 2:
            # CloudWatch ingests some events late: timestamped before the newest event already shown.
            put(logs, (now_ms() - 5_000, "arrived late with an older timestamp"))
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(dl.commands.logs, "_sleep", sleep)
    result = run("site", "--follow", "--since", "5m")
    assert result.exit_code == 0
    assert [line.split(" ", 1)[1] for line in result.output.splitlines()] == [
        "before following",
        "arrived while following",
        "arrived late with an older timestamp",
    ]
    assert len(polls) == 3


def test_logs_client_uses_adaptive_retries(aws):
    client = logs_client("eu-west-1")
    assert client.meta.config.retries["mode"] == "adaptive"
    assert client.meta.region_name == "eu-west-1"


def test_missing_credentials_is_a_clear_message(aws, project, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run("site")
    assert result.exit_code == 1
    assert "Error: reading /aws/lambda/demo-site failed: Unable to locate credentials" in result.output
    assert "Traceback" not in result.output


def test_access_denied_is_a_clear_message(aws):
    """moto does not check IAM: botocore's Stubber gives the real error shape (AccessDeniedException)."""
    from botocore.stub import Stubber

    from dl.errors import DlError

    client = boto3.client("logs")
    with Stubber(client) as stub:
        stub.add_client_error(
            "filter_log_events",
            service_error_code="AccessDeniedException",
            service_message="User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
            "logs:FilterLogEvents",
            http_status_code=400,
        )
        with pytest.raises(DlError) as error:
            lines(client, 0)
    assert str(error.value) == (
        "reading /aws/lambda/demo-site failed: AccessDeniedException: User: arn:aws:iam::123456789012:user/ci "
        "is not authorized to perform: logs:FilterLogEvents"
    )


def test_a_duration_before_year_one_is_a_usage_error(project):
    result = run("site", "--since", "99999999999d")
    assert result.exit_code == 2 and "reaches back before year 1" in result.output


def test_a_function_that_never_logged_is_no_logs_yet_exit_1(logs, project):
    """The log group exists (the stack made it) but holds no event: the README's promise, not silence."""
    result = run("site")
    assert result.exit_code == 1
    assert "Error: no logs yet for instance site: its function has not logged anything" in result.output


def test_an_empty_since_window_says_so_and_names_the_latest_event(logs, project):
    put(logs, (now_ms() - 3 * 60 * MINUTE_MS, "three hours ago"))
    result = run("site", "--since", "1h")
    assert result.exit_code == 1
    assert "Error: no log events for instance site since " in result.output
    assert "the latest event is from " in result.output and "widen --since to see it" in result.output
    result = run("site", "--since", "4h", "--filter", "ERROR")
    assert result.exit_code == 1
    assert "no log events matching 'ERROR' for instance site since" in result.output
    assert (
        "widen --since" not in result.output
    )  # the latest event is inside the window: the filter excluded it
