"""A spec is stored in a template without nulls (CloudFormation refuses them) and without ``${Name}`` (cfn-lint
reads it as a forgotten Fn::Sub), and reads back equal."""

from __future__ import annotations

import json
import re

from hypothesis import given
from hypothesis import strategies as st

from dl.aws import metadata_json
from dl.aws.metadata_json import metadata_spec, stored_spec
from dl.aws.templates import template_json
from tests.support.template_gate import check, null_paths

texts = st.text(alphabet="${}!:aZ", max_size=8)  # the characters that matter to the escaping, and others
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=30,
)


@given(st.dictionaries(texts, json_values, max_size=5))
def test_any_json_round_trips_without_a_null_or_a_substitution_in_between(spec):
    stored = json.loads(template_json({"Metadata": {"DatasetteLambda": stored_spec(spec)}}))
    assert null_paths(stored) == []
    assert re.search(r"\$\{(?!!)", json.dumps(stored)) is None  # every ${ is the literal form ${!
    assert metadata_spec(stored["Metadata"]) == spec


def test_a_substitution_in_a_title_or_a_table_name_passes_cfn_lint():
    spec = {"metadata": {"title": "Costs in ${AWS::Region}"}, "tables": {"${AWS::AccountId}": {"rows": None}}}
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Metadata": {"DatasetteLambda": stored_spec(spec)},
        "Resources": {"Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}}},
    }
    assert check(template_json(template), "eu-west-1") == []
    assert metadata_spec(json.loads(template_json(template))["Metadata"]) == spec
    raw = {**template, "Metadata": {"DatasetteLambda": {"spec": spec}}}
    assert any("E1029" in f for f in check(template_json(raw), "eu-west-1"))  # what escaping avoids


def test_places_count_list_positions_in_the_original_list():
    value = {"a": [None, {"b": None}, None, 1], "c": None}
    stripped, places = metadata_json.strip(value)
    assert stripped == {"a": [{}, 1]}
    assert places == [["a", 0], ["a", 1, "b"], ["a", 2], ["c"]]
    assert metadata_json.restore(stripped, places) == value


def test_a_spec_without_nulls_is_stored_as_it_is():
    assert stored_spec({"domain": "x.example", "rows": 3}) == {"spec": {"domain": "x.example", "rows": 3}}
    assert metadata_spec({"DatasetteLambda": {"spec": {"domain": None}}}) == {
        "domain": None
    }  # older templates
    assert metadata_spec({}) is None
