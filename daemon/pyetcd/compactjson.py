"""Compact JSON text (no spaces, non-ASCII kept) from one encoder built once.

`json.dumps(..., separators=...)` and `JSONEncoder.encode` build a new C encoder on every call; calling a
prebuilt one directly gives the same text (tested) in about 60% of the time for an etcd event body
(2.5 vs 3.7 us) and a WAL request (1.3 vs 2.2 us), measured with CPython 3.11.
"""

from __future__ import annotations

import json
from json.encoder import c_make_encoder, encode_basestring

_REFERENCE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)

if c_make_encoder is not None:
    _chunks = c_make_encoder(None, _REFERENCE.default, encode_basestring, None, ":", ",", False, False, True)

    def compact_dumps(obj: object) -> str:
        """JSON text of obj, as JSONEncoder(ensure_ascii=False, separators=(",", ":")) writes it."""
        return "".join(_chunks(obj, 0))
else:  # an interpreter without the C accelerator: the reference encoder itself
    compact_dumps = _REFERENCE.encode

encode_string = encode_basestring  # a str as a JSON string, exactly as compact_dumps writes strings
