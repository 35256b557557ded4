"""A spec is stored in a template without nulls (CloudFormation refuses them) and reads back equal."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from dl import nullfree
from dl.templates import metadata_spec, stored_spec, template_json
from tests.support.template_gate import null_paths

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=30,
)


@given(st.dictionaries(st.text(max_size=3), json_values, max_size=5))
def test_any_json_round_trips_without_a_null_in_between(spec):
    stored = json.loads(template_json({"Metadata": {"DatasetteLambda": stored_spec(spec)}}))
    assert null_paths(stored) == []
    assert metadata_spec(stored["Metadata"]) == spec


def test_places_count_list_positions_in_the_original_list():
    value = {"a": [None, {"b": None}, None, 1], "c": None}
    stripped, places = nullfree.strip(value)
    assert stripped == {"a": [{}, 1]}
    assert places == [["a", 0], ["a", 1, "b"], ["a", 2], ["c"]]
    assert nullfree.restore(stripped, places) == value


def test_a_spec_without_nulls_is_stored_as_it_is():
    assert stored_spec({"domain": "x.example", "rows": 3}) == {"spec": {"domain": "x.example", "rows": 3}}
    assert metadata_spec({"DatasetteLambda": {"spec": {"domain": None}}}) == {
        "domain": None
    }  # older templates
    assert metadata_spec({}) is None
