"""Label and field selector parsing, matching and canonical rendering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podns.objects.selectors import (
    DOES_NOT_EXIST,
    EQUALS,
    EXISTS,
    IN,
    NOT_EQUALS,
    NOT_IN,
    Requirement,
    Selector,
    SelectorError,
    escape_field_value,
    field_path_value,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector,
    selector_from_set,
)

LABELS = {"app": "db", "tier": "data", "version": "3"}


@pytest.mark.parametrize(
    "text,matches",
    [
        ("", True),
        ("app=db", True),
        ("app==db", True),
        ("app!=db", False),
        ("app=web", False),
        ("app in (db, web)", True),
        ("app notin (db,web)", False),
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("missing!=x", True),
        ("app=db,tier=data", True),
        ("app=db, tier=cache", False),
        ("version>2", True),
        ("version<2", False),
        ("environment in (production, qa),tier notin (frontend)", False),
    ],
    ids=str,
)
def test_label_selector_matching(text: str, matches: bool) -> None:
    """Given a selector string, then it matches a fixed label set as Kubernetes would."""
    assert parse_label_selector(text).matches(LABELS) is matches


@pytest.mark.parametrize(
    "text",
    ["app=", "app in (", "app in ()", "=db", "app=a=b", "app in (a b)", "a/b/c=d", "app=db,", "x=a b",
     "app notin a", "!a=b"],
    ids=str,
)
def test_bad_label_selectors(text: str) -> None:
    """Given malformed selectors, then parsing raises SelectorError, never anything else."""
    if text == "app=":
        assert parse_label_selector(text).matches({"app": ""})
        return
    with pytest.raises(SelectorError):
        parse_label_selector(text)


def test_canonical_string() -> None:
    """Given requirements in any order, then str() sorts them by key as Kubernetes does."""
    sel = parse_label_selector("tier in (b,a),app=db,!gone")
    assert str(sel) == "app=db,!gone,tier in (a,b)"
    assert str(selector_from_set({"b": "2", "a": "1"})) == "a=1,b=2"


def test_label_selector_object() -> None:
    """Given matchLabels and matchExpressions, then they compile to one conjunction; None selects
    nothing and {} everything."""
    sel = selector_from_label_selector(
        {
            "matchLabels": {"app": "db"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["data"]}],
        }
    )
    assert sel.matches(LABELS)
    assert not sel.matches({"app": "db"})
    assert not selector_from_label_selector(None).matches(LABELS)
    assert selector_from_label_selector({}).matches({})
    with pytest.raises(SelectorError):
        selector_from_label_selector({"matchExpressions": [{"key": "a", "operator": "Bogus"}]})


def test_field_selector() -> None:
    """Given field terms with escapes, then values unescape and != negates."""
    sel = parse_field_selector(r"metadata.name=a\,b,status.phase!=Running,spec.nodeName==n1")
    values = {"metadata.name": "a,b", "status.phase": "Pending", "spec.nodeName": "n1"}
    assert sel.matches(values.get)
    assert not sel.matches({**values, "status.phase": "Running"}.get)
    assert sel.fields() == {"metadata.name", "status.phase", "spec.nodeName"}
    for bad in ["metadata.name", r"a=b\x", "=b"]:
        with pytest.raises(SelectorError):
            parse_field_selector(bad)


label_values = st.from_regex(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?)?", fullmatch=True)
#: `in` and `notin` are keywords of the selector syntax: Kubernetes' parser refuses them as keys
#: ("found 'in', expected: !, identifier, or 'end of string'"), and so does ours
label_keys = st.from_regex(r"[a-z]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True).filter(
    lambda k: k not in ("in", "notin"))


@given(st.dictionaries(label_keys, label_values, min_size=1, max_size=5))
def test_set_selector_round_trips(labels: dict[str, str]) -> None:
    """For any label map, the selector rendered from it parses back and matches the map."""
    sel = parse_label_selector(str(selector_from_set(labels)))
    assert sel.matches(labels)
    assert str(sel) == str(selector_from_set(labels))


@given(st.text(max_size=30))
def test_parser_never_crashes(text: str) -> None:
    """For any input, the label parser either returns a selector or raises SelectorError."""
    try:
        parse_label_selector(text)
    except SelectorError:
        pass


@given(st.text(max_size=20), st.text(max_size=20))
def test_field_escape_round_trip(name: str, value: str) -> None:
    """For any value, escaping then parsing gives the value back."""
    field = "metadata.name"
    sel = parse_field_selector(f"{field}={escape_field_value(value)}")
    assert sel.requirements[0].value == value


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    key = draw(label_keys)
    op = draw(st.sampled_from([EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS, DOES_NOT_EXIST]))
    if op in (IN, NOT_IN):
        values = tuple(sorted(draw(st.sets(label_values.filter(bool), min_size=1, max_size=3))))
    elif op in (EQUALS, NOT_EQUALS):
        values = (draw(label_values),)
    else:
        values = ()
    return Requirement(key, op, values)


@given(st.lists(requirements(), max_size=4, unique_by=lambda r: r.key))
def test_any_selector_round_trips(reqs: list[Requirement]) -> None:
    """For any set-based selector, its canonical string parses back to the same selector."""
    sel = Selector(tuple(sorted(reqs, key=lambda r: r.key)))
    assert parse_label_selector(str(sel)) == sel


@given(st.lists(requirements(), max_size=4), st.dictionaries(label_keys, label_values, max_size=4))
def test_selector_is_a_conjunction(reqs: list[Requirement], labels: dict[str, str]) -> None:
    """For any labels, a selector matches exactly when every requirement does."""
    sel = Selector(tuple(reqs))
    assert sel.matches(labels) == all(r.matches(labels) for r in reqs)


def test_field_path_value_is_the_string_a_field_selector_compares() -> None:
    """Present fields give their string, booleans true/false, an absent or null last field "",
    and a path through a missing or non-object parent None (the field is unknown)."""
    pod = {"metadata": {"name": "db-0"}, "spec": {"nodeName": None, "hostNetwork": True,
                                                  "priority": 7}, "status": {}}
    assert field_path_value(pod, "metadata.name") == "db-0"
    assert field_path_value(pod, "spec.hostNetwork") == "true"
    assert field_path_value(pod, "spec.priority") == "7"
    assert field_path_value(pod, "spec.nodeName") == ""
    assert field_path_value(pod, "status.phase") == ""
    assert field_path_value(pod, "metadata.name.first") is None
    assert field_path_value(pod, "spec.missing.deeper") is None
    assert parse_field_selector("spec.hostNetwork=true,metadata.name!=db-1").matches(
        lambda path: field_path_value(pod, path))
