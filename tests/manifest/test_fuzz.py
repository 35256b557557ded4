"""Property: no input, however malformed, makes `dl validate` print a traceback or exit with anything but 0/1."""

from __future__ import annotations

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dl.cli import main

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
keys = st.one_of(
    st.sampled_from(
        [
            "project",
            "instances",
            "defaults",
            "region",
            "version",
            "databases",
            "config",
            "prefix",
            "metadata",
            "cors",
            "memory",
            "plugins",
            "secrets",
            "domain",
            "tags",
            "northwind",
        ]
    ),
    st.text(max_size=10),
)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)


def check(tmp_path, content: bytes) -> None:
    target = tmp_path / "datasette-lambda.yml"
    target.write_bytes(content)
    result = CliRunner().invoke(main, ["validate", "-f", str(target)])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents)
def test_arbitrary_yaml_documents_never_crash(tmp_path, document):
    check(tmp_path, yaml.safe_dump(document).encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(tmp_path, content):
    check(tmp_path, content)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    document=st.fixed_dictionaries(
        {"project": st.just("p"), "instances": st.dictionaries(keys, documents, max_size=3)}
    )
)
def test_shaped_documents_never_crash(tmp_path, document):
    check(tmp_path, yaml.safe_dump(document).encode())
