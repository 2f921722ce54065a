"""compact_dumps writes exactly what the reference encoder writes (the differential suite relies on it)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from pyetcd.compactjson import compact_dumps

REFERENCE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode

scalars = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False)
documents = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids,
                                                                                            max_size=4))


@given(documents)
def test_same_text_as_the_reference_encoder(doc: object) -> None:
    assert compact_dumps(doc) == REFERENCE(doc)


def test_lone_surrogates_and_non_ascii_kept_as_the_reference_keeps_them() -> None:
    doc = {"key": "/caf\u00e9/\ud800", "value": "<&>\u2028", "n": [1, None, True]}
    assert compact_dumps(doc) == REFERENCE(doc)
