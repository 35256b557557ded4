"""`dl validate`: every problem located as FILE:LINE:COL: PATH: MESSAGE, exit 1; valid manifests exit 0."""

from __future__ import annotations

import os
import sqlite3

import pytest
from click.testing import CliRunner

from dl.cli import main
from tests.conftest import make_db


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A folder holding a git repository marker and two healthy databases; the cwd for the test."""
    (tmp_path / ".git").mkdir()
    make_db(tmp_path / "northwind.db", {"customers": 5, "orders": 10})
    make_db(tmp_path / "cities.db", {"cities": 8})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DL_CACHE_DIR", str(tmp_path / ".cache"))
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(main, ["validate", *args])


MINIMAL = "project: my-data\ninstances:\n  northwind: {databases: [northwind.db]}\n"


def test_minimal_manifest_is_valid(repo):
    (repo / "datasette-lambda.yml").write_text(MINIMAL)
    result = run()
    assert result.exit_code == 0, result.output
    assert "valid (project my-data: 1 instance, 1 database)" in result.output


def test_manifest_from_env_var_and_option(repo, monkeypatch):
    (repo / "other.yml").write_text(MINIMAL)
    monkeypatch.setenv("DL_MANIFEST", "other.yml")
    assert run().exit_code == 0
    monkeypatch.delenv("DL_MANIFEST")
    assert run("-f", "other.yml").exit_code == 0
    assert run("--manifest", "other.yml").exit_code == 0


def test_example_manifest_is_valid(monkeypatch):
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    monkeypatch.chdir(root)
    result = run("-f", "datasette-lambda.yml.example")
    assert result.exit_code == 0, result.output


def test_usage_error_exits_2(repo):
    assert run("--no-such-option").exit_code == 2


# Each case: (manifest text, {extra file: content}, the exact located message expected on stderr).
BROKEN = [
    ("", {}, "datasette-lambda.yml:1:1: the manifest is empty: expected 'project' and 'instances'"),
    ("- a\n- b\n", {}, "datasette-lambda.yml:1:1: expected a mapping, got a list"),
    (
        "instances:\n  a: {databases: [northwind.db]}\n",
        {},
        "datasette-lambda.yml:1:1: missing required key 'project'",
    ),
    ("project: p\n", {}, "datasette-lambda.yml:1:1: missing required key 'instances'"),
    ("project: p\ninstances: {}\n", {}, "datasette-lambda.yml:2:12: instances: must not be empty"),
    (
        "projct: p\ninstances:\n  a: {databases: [northwind.db]}\n",
        {},
        "datasette-lambda.yml:1:1: projct: unknown key 'projct' (did you mean 'project'?)",
    ),
    (
        "project: My Data\ninstances:\n  a: {databases: [northwind.db]}\n",
        {},
        "datasette-lambda.yml:1:10: project: 'My Data' is not valid: a project name is 1-24 lower-case letters",
    ),
    (
        "project: p\nregion: mars\ninstances:\n  a: {databases: [northwind.db]}\n",
        {},
        "datasette-lambda.yml:2:9: region: 'mars' is not valid: expected an AWS region such as eu-west-1",
    ),
    (
        "version: 2\nproject: p\ninstances:\n  a: {databases: [northwind.db]}\n",
        {},
        "datasette-lambda.yml:1:10: version: expected 1, got 2",
    ),
    (
        "project: p\ninstances:\n  North_Wind: {databases: [northwind.db]}\n",
        {},
        "datasette-lambda.yml:3:3: instances.North_Wind: 'North_Wind' is not valid: an instance name is 1-32",
    ),
    (
        "project: p\ninstances:\n  a: {}\n",
        {},
        "datasette-lambda.yml:3:6: instances.a: missing required key 'databases'",
    ),
    (
        "project: p\ninstances:\n  a: {databases: []}\n",
        {},
        "datasette-lambda.yml:3:18: instances.a.databases: must not be empty",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], cros: true}\n",
        {},
        "datasette-lambda.yml:3:34: instances.a.cros: unknown key 'cros' (did you mean 'cors'?)",
    ),
    (
        "project: p\ninstances:\n  a:\n    databases: [northwind.db]\n    config:\n      default_page_size: ten\n",
        {},
        "datasette-lambda.yml:6:26: instances.a.config.default_page_size: expected integer, got 'ten'",
    ),
    (
        "project: p\ninstances:\n  a:\n    databases: [northwind.db]\n    config:\n      default_page_sise: 10\n",
        {},
        "datasette-lambda.yml:6:7: instances.a.config.default_page_sise: unknown key 'default_page_sise' (did you mean 'default_page_size'?)",
    ),
    (
        "project: p\ninstances:\n  a:\n    databases: [northwind.db]\n    config: {base_url: /x/}\n",
        {},
        "datasette-lambda.yml:5:14: instances.a.config.base_url: unknown key 'base_url': set the instance's `prefix` instead",
    ),
    (
        "project: p\ninstances:\n  a:\n    databases: [northwind.db]\n    config: {allow_download: maybe}\n",
        {},
        "datasette-lambda.yml:5:30: instances.a.config.allow_download: expected true or false, got 'maybe'",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], memory: 64}\n",
        {},
        "datasette-lambda.yml:3:42: instances.a.memory: must be at least 128, got 64",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], timeout: 901}\n",
        {},
        "datasette-lambda.yml:3:43: instances.a.timeout: must be at most 900, got 901",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], architecture: arm}\n",
        {},
        "datasette-lambda.yml:3:48: instances.a.architecture: expected one of arm64, x86_64, got 'arm' (did you mean 'arm64'?)",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], runtime: python3.9}\n",
        {},
        "datasette-lambda.yml:3:43: instances.a.runtime: expected one of python3.11, python3.12, python3.13, got 'python3.9'",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], log_retention_days: 31}\n",
        {},
        "datasette-lambda.yml:3:54: instances.a.log_retention_days: expected one of 1, 3, 5, 7, 14, 30",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], endpoint: rest}\n",
        {},
        "datasette-lambda.yml:3:44: instances.a.endpoint: expected one of function-url, http-api, got 'rest'",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], prefix: 'a b'}\n",
        {},
        "datasette-lambda.yml:3:42: instances.a.prefix: 'a b' is not valid: expected a URL path such as /data",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], domain: Data.Example}\n",
        {},
        "datasette-lambda.yml:3:42: instances.a.domain: 'Data.Example' is not valid: expected a lower-case DNS name",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], domain: d.example.com, cdn: false}\n",
        {},
        "datasette-lambda.yml:3:42: instances.a.domain: a custom domain is served through CloudFront: set cdn: true",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], certificate_arn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc'}\n",
        {},
        "instances.a.certificate_arn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc' is not valid: expected an ACM certificate ARN in us-east-1",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], plugins: ['--index-url=http://evil']}\n",
        {},
        "instances.a.plugins.0: '--index-url=http://evil' is not valid: expected a pip requirement",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], endpoint: http-api, timeout: 60}\n",
        {},
        "datasette-lambda.yml:3:63: instances.a.timeout: an HTTP API waits at most 30 s for the function",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [missing.db]}\n",
        {},
        "datasette-lambda.yml:3:19: instances.a.databases.0: missing.db file not found",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [sub]}\n",
        {"sub/x": "x"},
        "datasette-lambda.yml:3:19: instances.a.databases.0: sub is a directory, expected a SQLite file",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [empty.db]}\n",
        {"empty.db": b""},
        "datasette-lambda.yml:3:19: instances.a.databases.0: empty.db is empty (0 bytes), expected a SQLite database",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [notes.db]}\n",
        {"notes.db": b"hello, not sqlite" * 100},
        "datasette-lambda.yml:3:19: instances.a.databases.0: notes.db is not a SQLite database",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db, {path: cities.db, name: northwind}]}\n",
        {},
        "datasette-lambda.yml:3:33: instances.a.databases.1: database name 'northwind' is already used by databases[0]",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db, {pth: cities.db}]}\n",
        {},
        "datasette-lambda.yml:3:34: instances.a.databases.1.pth: unknown key 'pth' (did you mean 'path'?)",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], metadata: meta.yml}\n",
        {},
        "datasette-lambda.yml:3:44: instances.a.metadata: meta.yml: file not found",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], metadata: meta.json}\n",
        {"meta.json": '{"title": "x",\n "a": }'},
        "meta.json:2:7: instances.a.metadata: invalid JSON: Expecting value",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], metadata: meta.yml}\n",
        {"meta.yml": "- 1\n- 2\n"},
        "datasette-lambda.yml:3:44: instances.a.metadata: meta.yml must hold a mapping",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], domain: d.example.com}\n  b: {databases: [cities.db], domain: d.example.com}\n",
        {},
        "datasette-lambda.yml:4:39: instances.b.domain: domain d.example.com is already used by instance a",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db]}\n  a: {databases: [cities.db]}\n",
        {},
        "datasette-lambda.yml:4:3: instances.a: duplicate key 'a' (first defined on line 3)",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db]\n",
        {},
        "datasette-lambda.yml:4:1: invalid YAML",
    ),
    (
        "project: p\ndefaults: {databases: [northwind.db]}\ninstances:\n  a: {databases: [northwind.db]}\n",
        {},
        "datasette-lambda.yml:2:12: defaults.databases: unknown key 'databases': databases are listed per instance",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], secrets: {AWS_SECRET_ACCESS_KEY: X}}\n",
        {},
        "datasette-lambda.yml:3:44: instances.a.secrets.AWS_SECRET_ACCESS_KEY: AWS_SECRET_ACCESS_KEY is reserved",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], secrets: {TOKEN: AWS_SECRET_ACCESS_KEY}}\n",
        {},
        "instances.a.secrets.TOKEN: AWS_SECRET_ACCESS_KEY belongs to the machine running dl",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [/etc/hostname]}\n",
        {},
        "datasette-lambda.yml:3:19: instances.a.databases.0: /etc/hostname: absolute paths are not allowed",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [../outside.db]}\n",
        {},
        "datasette-lambda.yml:3:19: instances.a.databases.0: ../outside.db: resolves to",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [my data.db]}\n",
        {"my data.db": None},
        "datasette-lambda.yml:3:19: instances.a.databases.0: database name 'my data' (from the file name 'my data.db') is not valid",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], cors: 'yes please'}\n",
        {},
        "datasette-lambda.yml:3:40: instances.a.cors: expected true or false, got 'yes please'",
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], plugins: datasette-x}\n",
        {},
        "datasette-lambda.yml:3:43: instances.a.plugins: expected a list, got 'datasette-x'",
    ),
    (  # a 1.0 setting on the default line (0.65): checked against the line's own list
        "project: p\ninstances:\n  a:\n    databases: [northwind.db]\n    config: {max_insert_rows: 10}\n",
        {},
        "datasette-lambda.yml:5:14: instances.a.config.max_insert_rows: max_insert_rows is a setting of "
        'Datasette "1.0a", not of Datasette 0.65 (this instance\'s `datasette:` line): remove it or set '
        'datasette: "1.0a"',
    ),
    (
        "project: p\ninstances:\n  a: {databases: [northwind.db], datasette: '1.0'}\n",
        {},
        "datasette-lambda.yml:3:45: instances.a.datasette: expected one of 0.65, 1.0a, got '1.0' (did you mean '1.0a'?)",
    ),
    (  # the line's types: 1.0a's max_insert_rows is an integer
        "project: p\ninstances:\n  a:\n    databases: [northwind.db]\n    datasette: '1.0a'\n"
        "    config: {max_insert_rows: many}\n",
        {},
        "datasette-lambda.yml:6:31: instances.a.config.max_insert_rows: expected integer, got 'many'",
    ),
]


@pytest.mark.parametrize(
    ("text", "files", "expected"), BROKEN, ids=[f"case{i:02d}" for i in range(len(BROKEN))]
)
def test_broken_manifest_is_located_and_exits_1(repo, text, files, expected):
    for name, content in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            make_db(target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    (repo / "datasette-lambda.yml").write_text(text)
    result = run()
    assert result.exit_code == 1, result.output
    assert expected in result.output, result.output
    assert "Traceback" not in result.output


def test_all_problems_are_reported_at_once(repo):
    (repo / "datasette-lambda.yml").write_text(
        "project: p\ninstances:\n  a:\n    databases: [missing.db]\n    cros: true\n"
        "  b:\n    databases: [northwind.db]\n    config: {default_page_size: ten}\n"
    )
    result = run()
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("datasette-lambda.yml:")]
    assert lines == [
        "datasette-lambda.yml:4:17: instances.a.databases.0: missing.db file not found",
        "datasette-lambda.yml:5:5: instances.a.cros: unknown key 'cros' (did you mean 'cors'?)",
        "datasette-lambda.yml:8:33: instances.b.config.default_page_size: expected integer, got 'ten'",
    ]
    assert result.output.rstrip().endswith("3 problems found.")


def test_truncated_and_wal_databases_are_refused(repo):
    data = (repo / "northwind.db").read_bytes()
    (repo / "truncated.db").write_bytes(data[: len(data) // 2 + 100])
    wal = repo / "wal.db"
    conn = sqlite3.connect(wal)
    conn.execute("pragma journal_mode=wal")
    conn.execute("pragma wal_autocheckpoint=0")
    conn.execute("create table t (a)")
    conn.execute("insert into t values (1)")
    conn.commit()  # the write stays in wal.db-wal while this connection is open
    (repo / "datasette-lambda.yml").write_text(
        "project: p\ninstances:\n  a: {databases: [truncated.db]}\n  b: {databases: [wal.db]}\n"
    )
    result = run()
    conn.close()
    assert result.exit_code == 1
    assert "instances.a.databases.0: truncated.db is truncated" in result.output
    assert "instances.b.databases.0: wal.db is in WAL mode with pending writes in wal.db-wal" in result.output


def test_symlink_pointing_outside_the_repository_is_refused(repo, tmp_path_factory):
    outside = make_db(tmp_path_factory.mktemp("elsewhere") / "secret.db")
    (repo / "link.db").symlink_to(outside)
    (repo / "datasette-lambda.yml").write_text("project: p\ninstances:\n  a: {databases: [link.db]}\n")
    result = run()
    assert result.exit_code == 1
    assert "link.db: resolves to" in result.output and "outside the repository" in result.output
    assert run("--allow-outside-paths").exit_code == 0


def test_manifest_is_a_directory_or_missing_or_binary_or_huge(repo):
    (repo / "dir.yml").mkdir()
    result = run("-f", "dir.yml")
    assert result.exit_code == 1 and "dir.yml: is a directory" in result.output
    result = run("-f", "absent.yml")
    assert result.exit_code == 1 and "absent.yml: file not found" in result.output
    (repo / "bin.yml").write_bytes(b"project: p\n\xff\xfe\x00garbage")
    result = run("-f", "bin.yml")
    assert result.exit_code == 1 and "bin.yml:2:1: not UTF-8 text" in result.output
    with open(repo / "huge.yml", "wb") as f:
        f.truncate(50 * 1024 * 1024)
    result = run("-f", "huge.yml")
    assert result.exit_code == 1 and "huge.yml: is 52,428,800 bytes; a manifest is at most" in result.output


def test_unreadable_manifest(repo, monkeypatch):
    """Tests run as root (permissions are not enforced), so the EACCES comes from the read call itself."""
    import pathlib

    (repo / "locked.yml").write_text(MINIMAL)

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "read_bytes", denied)
    result = run("-f", "locked.yml")
    assert result.exit_code == 1
    assert "locked.yml: permission denied: cannot read the manifest" in result.output


def test_tags_follow_the_strictest_aws_rules_in_words(repo):
    """A stack's tags reach its IAM role, Lambda function, CloudFront distribution...: `R&D` is refused by IAM
    and CloudFront, an empty value by CloudFormation, `aws:` by every service. Messages say what is allowed."""
    (repo / "datasette-lambda.yml").write_text(
        "project: my-data\n"
        "tags:\n"
        '  team: "R&D"\n'
        '  "aws:owner": me\n'
        '  "cost centre": ""\n'
        "  place: Zürich\n"
        f"  {'k' * 129}: v\n"
        "instances:\n  northwind: {databases: [northwind.db]}\n"
    )
    result = run()
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("datasette-lambda.yml:")]
    allowed = "letters a-z and A-Z, digits, spaces and _ . : / = + - @ (CloudFront's rule, the strictest)"
    assert lines == [
        f"datasette-lambda.yml:3:9: tags.team: a tag value may only hold {allowed}; not '&'",
        "datasette-lambda.yml:4:3: tags.aws:owner: tag keys starting with 'aws:' are reserved by AWS",
        "datasette-lambda.yml:5:18: tags.cost centre: a tag value may not be empty (CloudFormation refuses "
        "empty stack tag values)",
        f"datasette-lambda.yml:6:10: tags.place: a tag value may only hold {allowed}; not 'ü'",
        f"datasette-lambda.yml:7:3: tags.{'k' * 129}: a tag key has at most 128 characters (this one has 129)",
    ]
    assert "Traceback" not in result.output


def test_tags_leave_room_for_datasette_lambdas_own(repo):
    """50 tags per resource, minus the 8 dl puts on a preview's instance stack: 42 pass, 43 are refused."""
    from dl.manifest.tags import MANIFEST_TAGS_MAX

    assert MANIFEST_TAGS_MAX == 42

    def manifest(count: int) -> str:
        tags = "".join(f"  t{i}: v{i}\n" for i in range(count))
        return f"project: my-data\ntags:\n{tags}instances:\n  northwind: {{databases: [northwind.db]}}\n"

    (repo / "datasette-lambda.yml").write_text(manifest(42))
    assert run().exit_code == 0
    (repo / "datasette-lambda.yml").write_text(manifest(43))
    result = run()
    assert result.exit_code == 1
    assert (
        "datasette-lambda.yml:2:1: tags: 43 tags: at most 42 are allowed (AWS allows 50 per resource and "
        "datasette-lambda adds up to 8 of its own)"
    ) in result.output


def test_a_fault_under_defaults_hides_no_instance_check(repo):
    """`defaults: {memory: lots}` used to stop every file check: the missing database is reported too."""
    (repo / "datasette-lambda.yml").write_text(
        "project: p\ndefaults: {memory: lots, cros: true}\ninstances:\n  a: {databases: [missing.db]}\n"
    )
    result = run()
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("datasette-lambda.yml:")]
    assert lines == [
        "datasette-lambda.yml:2:20: defaults.memory: expected integer, got 'lots'",
        "datasette-lambda.yml:2:26: defaults.cros: unknown key 'cros' (did you mean 'cors'?)",
        "datasette-lambda.yml:4:19: instances.a.databases.0: missing.db file not found",
    ]


def test_one_bad_secret_name_hides_no_other_secret_problem(repo):
    (repo / "datasette-lambda.yml").write_text(
        "project: p\ninstances:\n  a:\n    databases: [northwind.db]\n"
        "    secrets: {api-token: TOKEN, AWS_REGION: REGION, TOKEN: GITHUB_TOKEN, OK: 'not a name'}\n"
    )
    result = run()
    assert result.exit_code == 1
    assert (
        "instances.a.secrets.api-token: 'api-token' is not valid: a secret's name is an environment variable "
        "name: capital letters A-Z, digits and '_', not starting with a digit" in result.output
    )
    assert "instances.a.secrets.AWS_REGION: AWS_REGION is reserved" in result.output
    assert "instances.a.secrets.TOKEN: GITHUB_TOKEN belongs to the machine running dl" in result.output
    assert "instances.a.secrets.OK: 'not a name' is not valid" in result.output
    assert result.output.rstrip().endswith("4 problems found.")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "prefix: /-/",
            "instances.a.prefix: '/-/' is not valid: expected a URL path such as /data: segments of letters, "
            "digits, '.', '_', '~' and '-', each starting with a letter or digit",
        ),
        (
            "secrets: {TOKEN: my-token}",
            "instances.a.secrets.TOKEN: 'my-token' is not valid: expected the name of an environment variable: "
            "capital letters A-Z, digits and '_', not starting with a digit",
        ),
    ],
)
def test_pattern_messages_say_what_is_allowed_in_words(repo, setting, expected):
    (repo / "datasette-lambda.yml").write_text(
        f"project: p\ninstances:\n  a:\n    databases: [northwind.db]\n    {setting}\n"
    )
    result = run()
    assert result.exit_code == 1 and expected in result.output, result.output
    assert "^" not in result.output and "[A-Z" not in result.output


def test_every_pattern_in_the_schema_explains_itself():
    """A pattern's message is its x-error, in words: the raw regular expression is never shown."""
    from dl.manifest.schema import schema

    def patterns(node, path=""):
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield path, node
            for key, value in node.items():
                yield from patterns(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from patterns(value, f"{path}/{i}")

    found = list(patterns(schema()))
    assert len(found) >= 10
    for path, node in found:
        assert node.get("x-error"), f"{path}: a pattern without an x-error message"
