"""Event.to_json_bytes writes a view's JSON directly: it must be byte for byte what the dict path writes
(dump_json of to_json_obj, which the differential suite compares with etcd), for any key, value and
field combination, Go's escapes and lone surrogates included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pyetcd.store.event import CAS, CREATE, DELETE, EXPIRE, SET, UPDATE, Event, NodeView, dump_json

texts = st.text() | st.sampled_from(["/", "<a&b>", "\b\f\u2028\u2029", "caf\u00e9\ud800", "\\b", '"q"'])
indexes = st.integers(min_value=0, max_value=2**63 - 1)


def views(children: bool = True) -> st.SearchStrategy[NodeView]:
    leaf = st.builds(NodeView, key=texts, dir=st.booleans(), value=st.none() | texts,
                     expire_at_ns=st.sampled_from([0, 1_700_000_000_123_456_789, 1_700_000_000_000_000_000]),
                     ttl=st.integers(min_value=-5, max_value=10**9), nodes=st.none() | st.just(()),
                     modified_index=indexes, created_index=indexes)
    if not children:
        return leaf
    return st.builds(NodeView, key=texts, dir=st.just(True), value=st.none(), expire_at_ns=st.just(0), ttl=st.just(0),
                     nodes=st.tuples(leaf, leaf), modified_index=indexes, created_index=indexes) | leaf


@given(action=st.sampled_from([SET, CREATE, UPDATE, DELETE, CAS, EXPIRE, "get"]), node=views(),
       prev=st.none() | views(), no_value=st.booleans())
def test_direct_text_is_the_dict_paths_text(action: str, node: NodeView, prev: NodeView | None,
                                            no_value: bool) -> None:
    event = Event(action, node, prev, node.modified_index, node.modified_index)
    assert event.to_json_bytes(no_value) == dump_json(event.to_json_obj(no_value))
