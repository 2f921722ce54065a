"""Differential cases, one list per spec section; CASES collects them all.

Every case runs in its own key namespace ``{ns}`` (= ``/<case name>``) on a shared etcd and a shared
pyetcd, so cases must leave nothing behind that changes the store index later: TTLs outside the
expiry cases are long (>= 300 s) and expiry cases wait until their keys have expired.
"""

from __future__ import annotations

from typing import Any

from tests.differential.harness import (
    JSON_CT,
    Bulk,
    Case,
    Send,
    Sleep,
    StreamRead,
    WatchEnd,
    WatchQuiet,
    case,
    delete,
    get,
    head,
    keys,
    post,
    put,
    req,
    send,
    watch,
)

BOOL_PARAMS = ("recursive", "sorted", "wait", "dir", "quorum", "stream", "noValueOnSuccess", "prevExist", "refresh")
TRUE_SPELLINGS = ("1", "t", "T", "TRUE", "true", "True")
FALSE_SPELLINGS = ("0", "f", "F", "FALSE", "false", "False")
TEN_MIB = 10 * 1024 * 1024
IDX = frozenset({"x-etcd-index"})


def spelling_id(s: str) -> str:
    return {"1": "one", "0": "zero", "t": "t", "T": "Tup", "f": "f", "F": "Fup"}.get(s, s)


# ----------------------------------------------------------------------------------------------
# §1 routing, path cleaning, CORS, OPTIONS, 405
# ----------------------------------------------------------------------------------------------


def routing_cases() -> list[Case]:
    out: list[Case] = []
    for name, path in [("root", "/"), ("v2", "/v2"), ("v2_slash", "/v2/"), ("keysfoo", "/v2/keysfoo"),
                       ("machines_slash", "/v2/machines/"), ("stats_foo", "/v2/stats/foo"),
                       ("nonexistent", "/nonexistent"), ("stats_slash", "/v2/stats/"),
                       ("version_slash", "/version/")]:
        out.append(case(f"r404_{name}", send("GET", path), send("POST", path, form={"value": "x"})))
    cleaning = [
        ("double_slash", "PUT", "/v2/keys{ns}//a///b"),
        ("dot", "PUT", "/v2/keys{ns}/./d"),
        ("dotdot", "PUT", "/v2/keys{ns}/x/../e"),
        ("post", "POST", "/v2/keys{ns}//q"),
        ("delete", "DELETE", "/v2/keys{ns}//a"),
        ("get_query_dropped", "GET", "/v2/keys{ns}//a?recursive=true&x=%2F"),
        ("put_query_kept", "PUT", "/v2/keys{ns}//a?value=q&ttl=5"),
        ("head", "HEAD", "/v2/keys{ns}//a"),
        ("members", "GET", "/v2/members//x"),
        ("trailing_dotdot", "GET", "/v2/keys{ns}/a/.."),
    ]
    for name, method, target in cleaning:
        out.append(case(f"r301_{name}", send(method, target, form={"value": "1"}) if method in ("PUT", "POST")
                        else send(method, target), get("", "recursive=true"), get("/a")))
    out.append(case("r400_bad_path_escape", send("GET", "/v2/keys{ns}/%ZZ", ignore=frozenset({"content-length", "date"}))))
    for name, path in [("key", "/v2/keys{ns}/x"), ("nonexistent", "/nope"), ("members", "/v2/members"),
                       ("version", "/version"), ("stats", "/v2/stats/self")]:
        out.append(case(f"r_options_{name}", send("OPTIONS", path)))
    not_allowed = [
        ("keys_patch", "PATCH", "/v2/keys{ns}/foo"),
        ("keys_root_trace", "CONNECT_", "/v2/keys/"),
        ("members_patch", "PATCH", "/v2/members"),
        ("members_head", "HEAD", "/v2/members"),
        ("machines_post", "POST", "/v2/machines"),
        ("machines_delete", "DELETE", "/v2/machines"),
        ("stats_self_post", "POST", "/v2/stats/self"),
        ("stats_store_head", "HEAD", "/v2/stats/store"),
        ("stats_leader_put", "PUT", "/v2/stats/leader"),
        ("version_head", "HEAD", "/version"),
        ("version_post", "POST", "/version"),
        ("health_head", "HEAD", "/health"),
        ("health_delete", "DELETE", "/health"),
        ("members_delete_noid", "DELETE", "/v2/members"),
        ("members_put_noid", "PUT", "/v2/members"),
    ]
    for name, method, target in not_allowed:
        method = "PROPFIND" if method == "CONNECT_" else method
        out.append(case(f"r405_{name}", send(method, target)))
    return out


# ----------------------------------------------------------------------------------------------
# §2.1 where parameters come from; limits
# ----------------------------------------------------------------------------------------------


def param_source_cases() -> list[Case]:
    return [
        case("p_query_value", put("/q1", "value=fromquery")),
        case("p_body_wins_put", put("/q2", "value=fromquery", value="fromform")),
        case("p_body_wins_post", post("/q3", "value=fromquery", value="fromform")),
        case("p_first_wins_query", put("/q4", "value=a&value=b"), get("/q4")),
        case("p_first_wins_body", send("PUT", keys("/q5"), form="value=a&value=b"), get("/q5")),
        case("p_merge_query_and_body", put("/q6", "ttl=300", value="v"), get("/q6")),
        case("p_json_body_ignored", send("PUT", keys("/j"), body='{"value":"x"}', content_type=JSON_CT)),
        case("p_no_content_type_ignored", send("PUT", keys("/nct"), body="value=x")),
        case("p_form_charset_param", send("PUT", keys("/cs"), body="value=x",
                                          content_type="application/x-www-form-urlencoded; charset=utf-8")),
        case("p_delete_ignores_body", put("/cad3", value="x"),
             send("DELETE", keys("/cad3"), form={"prevValue": "y"})),
        case("p_get_ignores_body", put("/gb", value="x"),
             send("GET", keys("/gb"), form={"wait": "true"})),
        case("p_unknown_param_ignored", put("/u", value="x"), get("/u", "foo=bar")),
        case("p_bad_escape_query", send("PUT", keys("/e", "value=%ZZ"))),
        case("p_bad_escape_body", send("PUT", keys("/e"), form="value=%ZZ")),
        case("p_bad_escape_get_query", get("/e", "recursive=%ZZ")),
        case("p_plus_is_space", send("PUT", keys("/plus"), form="value=a+b%20c")),
        case("p_form_limit_exact", send("PUT", keys("/big"), form=form_of_size(TEN_MIB)), get("/big")),
        case("p_form_limit_plus_one", send("PUT", keys("/big"), form=form_of_size(TEN_MIB + 1)), get("/big")),
        case("p_value_1mib", put("/v1m", compare=True, value="x" * (1 << 20)), get("/v1m")),
        case("p_empty_value", put("/ev", value=""), get("/ev")),
        case("p_no_value_at_all", put("/nv"), get("/nv")),
    ]


def form_of_size(n: int) -> str:
    prefix = "value=small&pad="
    return prefix + "p" * (n - len(prefix))


# ----------------------------------------------------------------------------------------------
# §2.2 parameter types and validation order
# ----------------------------------------------------------------------------------------------


def bool_cases() -> list[Case]:
    out: list[Case] = []
    for p in BOOL_PARAMS:
        method = "GET" if p in ("recursive", "sorted", "wait", "quorum", "stream") else "PUT"
        for bad in ("yes", ""):
            bid = bad or "empty"
            out.append(case(f"b_bad_{p}_{bid}", send(method, keys("/k", f"{p}={bad}"))))
    for s in TRUE_SPELLINGS + FALSE_SPELLINGS:
        out.append(case(f"b_recursive_{spelling_id(s)}", put("/d/sub/x", value="1"), put("/d/y", value="2"),
                        get("/d", f"recursive={s}")))
    out.append(case("b_dir_spellings", *[put(f"/d{spelling_id(s)}", dir=s) for s in TRUE_SPELLINGS + FALSE_SPELLINGS]))
    out.append(case("b_prevexist_spellings", put("/k", value="0"),
                    *[put("/k", prevExist=s, value=s) for s in TRUE_SPELLINGS],
                    *[put(f"/n{spelling_id(s)}", prevExist=s, value=s) for s in FALSE_SPELLINGS]))
    out.append(case("b_sorted_T", put("/d/b", value="b"), put("/d/a", value="a"), put("/d/c", value="c"),
                    get("/d", "sorted=T"), get("/d", "sorted=1&recursive=t")))
    out.append(case("b_quorum_true", put("/k", value="v"), get("/k", "quorum=true"), get("/k", "quorum=0")))
    out.append(case("b_bad_bool_in_body", send("PUT", keys("/k"), form={"dir": "maybe"})))
    out.append(case("b_bad_bool_delete_query", put("/k", value="v"), delete("/k", "recursive=yes"), get("/k")))
    return out


def number_cases() -> list[Case]:
    out: list[Case] = []
    for bad, bid in [("abc", "abc"), ("-1", "neg"), ("1.5", "frac"), ("+5", "plus"), (" 5", "space"), ("0x10", "hex")]:
        out.append(case(f"n_ttl_{bid}", send("PUT", keys("/k"), form={"value": "v", "ttl": bad}), get("/k")))
    for bad, bid in [("abc", "abc"), ("-1", "neg"), ("1.5", "frac"), ("", "empty")]:
        out.append(case(f"n_previndex_{bid}", put("/k", value="v"), put("/k", value="w", prevIndex=bad)))
        out.append(case(f"n_waitindex_{bid}", get("/k", f"wait=true&waitIndex={bad}")))
    out += [
        case("n_previndex_zero_is_set", put("/k", value="v"), put("/k", value="w", prevIndex="0")),
        case("n_ttl_empty_no_ttl", put("/k", value="v", ttl="")),
        case("n_ttl_empty_removes_ttl", put("/k", value="v", ttl="300"), put("/k", value="w", ttl=""), get("/k")),
        case("n_prevvalue_empty", put("/k", value="v"), put("/k", value="w", prevValue="")),
        case("n_wait_on_put", send("PUT", keys("/k", "wait=true"), form={"value": "v"})),
        case("n_wait_on_post", send("POST", keys("/k", "wait=true"), form={"value": "v"})),
        case("n_wait_on_delete", delete("/k", "wait=true")),
        case("n_wait_in_body_put", send("PUT", keys("/k"), form={"value": "v", "wait": "true"})),
        case("n_delete_bad_previndex", delete("/k", "prevIndex=x")),
        case("n_delete_empty_prevvalue", put("/k", value="v"), delete("/k", "prevValue=")),
    ]
    return out


def validation_order_cases() -> list[Case]:
    combos = [
        ("form_before_previndex", "PUT", "prevIndex=x", "value=%ZZ"),
        ("previndex_before_waitindex", "GET", "prevIndex=x&waitIndex=y", None),
        ("waitindex_before_recursive", "GET", "waitIndex=y&recursive=bad", None),
        ("recursive_before_sorted", "GET", "sorted=bad&recursive=bad", None),
        ("sorted_before_wait", "GET", "wait=bad&sorted=bad", None),
        ("wait_before_dir", "GET", "dir=bad&wait=bad", None),
        ("dir_before_quorum", "GET", "quorum=bad&dir=bad", None),
        ("quorum_before_stream", "GET", "stream=bad&quorum=bad", None),
        ("stream_before_wait_on_put", "PUT", "wait=true&stream=bad", None),
        ("wait_on_put_before_prevvalue", "PUT", "prevValue=&wait=true", None),
        ("prevvalue_before_novalue", "PUT", "noValueOnSuccess=bad&prevValue=", None),
        ("novalue_before_ttl", "PUT", "ttl=x&noValueOnSuccess=bad", None),
        ("ttl_before_prevexist", "PUT", "prevExist=bad&ttl=x", None),
        ("prevexist_before_refresh", "PUT", "refresh=bad&prevExist=bad", None),
        ("refresh_value_before_no_ttl", "PUT", "refresh=true&value=x", None),
        ("bool_before_ttl_in_body", "PUT", None, "ttl=x&dir=bad"),
        ("previndex_before_bool_in_body", "PUT", "recursive=bad", "prevIndex=-3"),
    ]
    out = []
    for name, method, query, body in combos:
        kw: dict[str, Any] = {"form": body} if body is not None else {}
        out.append(case(f"vo_{name}", send(method, keys("/k", query or ""), **kw)))
    return out


# ----------------------------------------------------------------------------------------------
# §2.3 key paths, §2.4 hidden keys
# ----------------------------------------------------------------------------------------------


def keypath_cases() -> list[Case]:
    return [
        case("k_trailing_slash_put", send("PUT", "/v2/keys{ns}/c/", form={"value": "v"}), get("/c")),
        case("k_trailing_slash_get_dir", put("/d/a", value="1"), send("GET", "/v2/keys{ns}/d/")),
        case("k_pct2f_is_separator", send("PUT", "/v2/keys{ns}/pct%2Fslash", form={"value": "v"}),
             get("/pct"), get("/pct/slash")),
        case("k_space", send("PUT", "/v2/keys{ns}/sp%20ace", form={"value": "v"}), get("/sp%20ace")),
        case("k_unicode", send("PUT", "/v2/keys{ns}/unicode%C3%A9", form={"value": "caf\u00e9 \u2603"}),
             get("/unicode%C3%A9"), get("")),
        case("k_html_escapes", send("PUT", "/v2/keys{ns}/a%3Cb%3E%26c", form={"value": "<&>"}),
             get("/a%3Cb%3E%26c")),
        case("k_control_chars", send("PUT", "/v2/keys{ns}/ctl%01%08%0C", form="value=%01%09%0A%0D%7F%E2%80%A8")),
        case("k_invalid_utf8", send("PUT", "/v2/keys{ns}/bad%FFutf", form="value=%FF%FE")),
        case("k_quote_backslash", send("PUT", "/v2/keys{ns}/q%22%5C", form={"value": '"\\'})),
        case("k_root_both_forms", send("PUT", "/v2/keys", form={"value": "x"}), send("PUT", "/v2/keys/", form={"value": "x"}),
             send("POST", "/v2/keys?wait=true")),
        case("k_root_bad_param_no_slash", send("GET", "/v2/keys?recursive=bad")),
        case("k_first_missing_component", get("/a/b/c")),
        case("k_first_missing_component_mid", put("/a/x", value="1"), get("/a/b/c")),
        case("k_internal_namespace_hidden", send("GET", "/v2/keys/0"), send("GET", "/v2/keys/0/members")),
        case("k_double_encoded", send("PUT", "/v2/keys{ns}/pc%252F", form={"value": "v"}), get("")),
    ]


def hidden_cases() -> list[Case]:
    return [
        case("h_create_get", put("/d/_hidden", value="H"), get("/d/_hidden")),
        case("h_not_listed", put("/d/_hidden", value="H"), put("/d/v", value="V"), get("/d")),
        case("h_not_listed_recursive", put("/d/sub/_h", value="H"), put("/d/sub/v", value="V"),
             put("/d/_hd/x", value="X"), get("/d", "recursive=true&sorted=true")),
        case("h_only_hidden_child_no_nodes", put("/d/_h", value="H"), get("/d")),
        case("h_hidden_dir_listable", put("/_hd/a", value="1"), get("/_hd"), get("/_hd", "recursive=true"), get("")),
        case("h_delete", put("/d/_h", value="H"), delete("/d/_h"), get("/d/_h")),
        case("h_watch_exact_fires", watch("w", "/hw/_h"), put("/hw/_h", value="1"), WatchEnd("w")),
        case("h_recursive_watch_skips", watch("w", "/w3", "wait=true&recursive=true"), put("/w3/_h", value="1"),
             put("/w3/vis", value="2"), WatchEnd("w")),
        case("h_recursive_watch_skips_deep", watch("w", "/w4", "wait=true&recursive=true"),
             put("/w4/_h/deep", value="1"), put("/w4/ok/deep", value="2"), WatchEnd("w")),
        case("h_cas_on_hidden", put("/_c", value="a"), put("/_c", value="b", prevValue="a")),
    ]


# ----------------------------------------------------------------------------------------------
# §3/§4 headers, node model, listings
# ----------------------------------------------------------------------------------------------


def node_cases() -> list[Case]:
    return [
        case("nd_get_index_header_is_current", put("/a", value="1"), put("/b", value="2"), get("/a")),
        case("nd_error_headers", get("/missing")),
        case("nd_implicit_dirs", put("/a/b/c", value="v"), get("/a"), get("/a/b")),
        case("nd_dir_modified_unchanged", put("/d/a", value="1"), put("/d/b", value="2"), delete("/d/a"), get("/d")),
        case("nd_empty_dir_no_nodes", put("/d", dir="true"), get("/d"), get("/d", "recursive=true")),
        case("nd_listing_child_dir_without_nodes", put("/d/sub/x", value="1"), put("/d/f", value="2"), get("/d")),
        case("nd_recursive_nested", put("/d/sub/deeper/x", value="1"), put("/d/sub/y", value="2"),
             put("/d/z", value="3"), get("/d", "recursive=true")),
        case("nd_sorted_bytewise", put("/d/b", value="1"), put("/d/B", value="2"), put("/d/a", value="3"),
             put("/d/a0", value="4"), put("/d/%C3%A9", value="5"), put("/d/sub/z", value="6"),
             put("/d/sub/a", value="7"), get("/d", "sorted=true&recursive=true")),
        case("nd_recursive_on_file", put("/f", value="v"), get("/f", "recursive=true&sorted=true")),
        case("nd_big_listing", Bulk("/v2/keys{ns}/d/k{i}", 300), get("/d")),
        case("nd_big_listing_sorted", Bulk("/v2/keys{ns}/d/k{i}", 150), get("/d", "sorted=true")),
        case("nd_ttl_fields_order", put("/t", value="v", ttl="300"), get("/t")),
        case("nd_dir_ttl_fields", put("/td", dir="true", ttl="300"), get("/td")),
        case("nd_quorum_get", put("/k", value="v"), get("/k", "quorum=true"), get("/missing", "quorum=true")),
        case("nd_novalue_get_noeffect", put("/k", value="v"), get("/k", "noValueOnSuccess=true")),
        case("nd_head_key", put("/k", value="v"), head("/k")),
        case("nd_head_missing", head("/missing")),
        case("nd_head_dir", put("/d/x", value="1"), head("/d", "recursive=true")),
        case("nd_head_parse_error", head("/k", "recursive=bad")),
    ]


# ----------------------------------------------------------------------------------------------
# §5.2 PUT decision table
# ----------------------------------------------------------------------------------------------


def put_cases() -> list[Case]:
    return [
        case("put_set_new", put("/foo", value="one")),
        case("put_set_replace", put("/foo", value="one"), put("/foo", value="two"), get("/foo")),
        case("put_set_on_dir", put("/d/x", value="1"), put("/d", value="v")),
        case("put_dir_on_dir", put("/d", dir="true"), put("/d", dir="true")),
        case("put_dir_on_file", put("/f", value="f"), put("/f", dir="true"), get("/f")),
        case("put_dir_with_value_dropped", put("/d", dir="true", value="x"), get("/d")),
        case("put_create_new", put("/foo", "prevExist=false", value="one")),
        case("put_create_existing", put("/foo", value="one"), put("/foo", value="two", prevExist="false")),
        case("put_create_existing_dir", put("/d/x", value="1"), put("/d", prevExist="false", value="v")),
        case("put_create_ignores_prevvalue", put("/n", value="v", prevExist="false", prevValue="zz", prevIndex="9")),
        case("put_update", put("/foo", value="one"), put("/foo", value="two", prevExist="true")),
        case("put_update_missing", put("/nope", value="two", prevExist="true")),
        case("put_update_no_value", put("/foo", value="one"), put("/foo", prevExist="true")),
        case("put_update_removes_ttl", put("/foo", value="one", ttl="300"), put("/foo", value="t", prevExist="true")),
        case("put_update_dir_ttl", put("/d", dir="true"), put("/d", dir="true", prevExist="true", ttl="300"),
             put("/d", dir="true", prevExist="true", ttl="")),
        case("put_update_dir_keeps_modified_index", put("/d", dir="true"),
             put("/d", dir="true", prevExist="true", ttl="300"), get("/d"), put("/d", dir="true", prevExist="true",
                                                                                 ttl="200")),
        case("put_update_dir_value", put("/d", dir="true"), put("/d", prevExist="true", value="x")),
        case("put_update_dir_without_dirflag", put("/d/a", value="1"), put("/d", prevExist="true", ttl="300")),
        case("put_cas_prevvalue_ok", put("/foo", value="two"), put("/foo", value="three", prevValue="two")),
        case("put_cas_prevvalue_wrong", put("/foo", value="three"), put("/foo", value="four", prevValue="wrong")),
        case("put_cas_previndex_ok", put("/foo", value="three"), put("/foo", value="four", prevIndex="{base+1}")),
        case("put_cas_both_wrong", put("/foo", value="four"), put("/foo", value="5", prevIndex="1", prevValue="wrong")),
        case("put_cas_index_wrong_only", put("/foo", value="four"), put("/foo", value="5", prevIndex="1",
                                                                           prevValue="four")),
        case("put_cas_value_wrong_index_ok", put("/foo", value="four"),
             put("/foo", value="5", prevIndex="{base+1}", prevValue="x")),
        case("put_cas_prevexist_true", put("/foo", value="five"), put("/foo", value="six", prevExist="true",
                                                                      prevValue="five")),
        case("put_cas_missing", put("/nope", value="five", prevValue="x")),
        case("put_cas_missing_previndex", put("/nope", value="five", prevIndex="3")),
        case("put_cas_on_dir", put("/d/x", value="1"), put("/d", value="v", prevValue="x")),
        case("put_cas_keeps_ttl_semantics", put("/k", value="a", ttl="300"), put("/k", value="b", prevValue="a")),
        case("put_below_file", put("/f", value="v"), put("/f/x", value="x"), put("/f/x/y", value="x")),
        case("put_root", send("PUT", "/v2/keys/", form={"value": "x"})),
        case("put_root_dir", send("PUT", "/v2/keys", form={"dir": "true"})),
        case("put_root_prevexist", send("PUT", "/v2/keys/", form={"prevExist": "true", "value": "x"})),
        case("put_set_with_ttl", put("/t", value="v", ttl="300")),
        case("put_set_replaces_ttl_key", put("/t", value="v", ttl="300"), put("/t", value="w")),
        case("put_ttl_overflow_free", put("/t", value="v", ttl="86400"), get("/t")),
        case("put_status_codes_sequence", put("/s", value="1"), put("/s", value="2"),
             put("/s", value="3", prevExist="true"), put("/s2", value="1", prevExist="false")),
    ]


def refresh_cases() -> list[Case]:
    return [
        case("ref_update", put("/t", value="bar", ttl="300"), put("/t", refresh="true", ttl="200", prevExist="true")),
        case("ref_set", put("/t", value="bar", ttl="300"), put("/t", refresh="true", ttl="200"), get("/t")),
        case("ref_with_value", put("/t", value="bar", ttl="300"), put("/t", refresh="true", ttl="20", value="x")),
        case("ref_without_ttl", put("/t", value="bar", ttl="300"), put("/t", refresh="true")),
        case("ref_empty_value_ok", put("/t", value="bar", ttl="300"), put("/t", refresh="true", ttl="200", value="")),
        case("ref_missing", put("/nope", refresh="true", ttl="20")),
        case("ref_missing_prevexist", put("/nope", refresh="true", ttl="20", prevExist="true")),
        case("ref_no_watch_event", put("/t", value="bar", ttl="300"), watch("w", "/t"),
             put("/t", refresh="true", ttl="200", prevExist="true"), put("/t", value="next"), WatchEnd("w")),
        case("ref_no_ttl_key", put("/t", value="bar"), put("/t", refresh="true", ttl="200", prevExist="true")),
        case("ref_dir", put("/d", dir="true", ttl="300"), put("/d", refresh="true", ttl="200", prevExist="true",
                                                              dir="true")),
    ]


def novalue_cases() -> list[Case]:
    nv = "true"
    return [
        case("nv_set", put("/k", value="x", noValueOnSuccess=nv)),
        case("nv_set_replace", put("/k", value="x"), put("/k", value="y", noValueOnSuccess=nv)),
        case("nv_create", put("/k", value="x", prevExist="false", noValueOnSuccess=nv)),
        case("nv_update", put("/k", value="x"), put("/k", value="y", prevExist="true", noValueOnSuccess=nv)),
        case("nv_cas", put("/k", value="x"), put("/k", value="y", prevValue="x", noValueOnSuccess=nv)),
        case("nv_post", post("/q", value="y", noValueOnSuccess=nv)),
        case("nv_error_unaffected", put("/k", value="x"), put("/k", value="y", prevValue="z", noValueOnSuccess=nv)),
        case("nv_delete_unaffected", put("/k", value="x"), delete("/k", "noValueOnSuccess=true")),
        case("nv_false", put("/k", value="x", noValueOnSuccess="false")),
        case("nv_dir", put("/d", dir="true", noValueOnSuccess=nv)),
    ]


# ----------------------------------------------------------------------------------------------
# §5.5 POST, §5.6 DELETE
# ----------------------------------------------------------------------------------------------


def post_cases() -> list[Case]:
    return [
        case("post_inorder", post("/queue", value="Job1"), post("/queue", value="Job2"),
             get("/queue", "sorted=true")),
        case("post_ttl", post("/queue", value="Job3", ttl="300")),
        case("post_dir", post("/queue", dir="true"), get("/queue", "recursive=true")),
        case("post_ignores_prev", post("/queue", value="x", prevExist="true", prevValue="nope", prevIndex="7")),
        case("post_on_file", put("/plain", value="p"), post("/plain", value="x")),
        case("post_on_root", send("POST", "/v2/keys/", form={"value": "root-inorder"})),
        case("post_into_existing_dir", put("/q/a", value="1"), post("/q", value="2"), get("/q", "sorted=true")),
        case("post_no_value", post("/q")),
        case("post_below_file", put("/f", value="1"), post("/f/q", value="2")),
        case("post_create_then_get", post("/q", value="v"), get("/q", "recursive=true")),
        case("post_in_order_watch", watch("w", "/q", "wait=true&recursive=true"), post("/q", value="v"), WatchEnd("w")),
    ]


def delete_cases() -> list[Case]:
    return [
        case("del_file", put("/m", value="Hello"), delete("/m"), get("/m")),
        case("del_missing", delete("/nope")),
        case("del_missing_parent", delete("/a/b/c")),
        case("del_dir_plain", put("/d/a", value="1"), delete("/d")),
        case("del_dir_dirflag_nonempty", put("/d/a", value="1"), delete("/d", "dir=true")),
        case("del_dir_dirflag_empty", put("/d", dir="true"), delete("/d", "dir=true")),
        case("del_dir_recursive", put("/d/a", value="1"), put("/d/s/b", value="2"), delete("/d", "recursive=true"),
             get("/d"), get("/d/s/b")),
        case("del_file_with_dir_flag", put("/f", value="1"), delete("/f", "dir=true")),
        case("del_file_with_recursive", put("/f", value="1"), delete("/f", "recursive=true")),
        case("del_root", send("DELETE", "/v2/keys/")),
        case("del_root_recursive", send("DELETE", "/v2/keys/?recursive=true")),
        case("del_root_dir", send("DELETE", "/v2/keys?dir=true")),
        case("del_cad_prevvalue_wrong", put("/cad", value="one"), delete("/cad", "prevValue=two")),
        case("del_cad_prevvalue_ok", put("/cad", value="one"), delete("/cad", "prevValue=one")),
        case("del_cad_previndex_ok", put("/cad", value="one"), delete("/cad", "prevIndex={base+1}")),
        case("del_cad_previndex_wrong", put("/cad", value="one"), delete("/cad", "prevIndex=2")),
        case("del_cad_both_wrong", put("/cad", value="one"), delete("/cad", "prevIndex=2&prevValue=x")),
        case("del_cad_on_dir", put("/caddir/x", value="1"), delete("/caddir", "prevValue=x&dir=true")),
        case("del_cad_on_dir_recursive", put("/caddir/x", value="1"),
             delete("/caddir", "prevIndex={base+1}&recursive=true")),
        case("del_cad_missing", delete("/nope", "prevValue=x")),
        case("del_previndex_zero_plain", put("/k", value="1"), delete("/k", "prevIndex=0")),
        case("del_prevexist_ignored", put("/k", value="1"), delete("/k", "prevExist=false")),
        case("del_ttl_key", put("/k", value="1", ttl="300"), delete("/k")),
        case("del_dir_with_ttl", put("/d", dir="true", ttl="300"), delete("/d", "dir=true")),
        case("del_hidden_child_dir_not_empty", put("/d/_h", value="1"), delete("/d", "dir=true"), get("/d")),
    ]


# ----------------------------------------------------------------------------------------------
# §6 watches
# ----------------------------------------------------------------------------------------------


def watch_cases() -> list[Case]:
    return [
        case("w_next_event", put("/k", value="v0"), watch("w", "/k"), put("/k", value="v1"), WatchEnd("w")),
        case("w_nonexistent_fires_on_create", watch("w", "/new"), put("/new", value="v"), WatchEnd("w")),
        case("w_recursive", put("/w/a", value="0"), watch("w", "/w", "wait=true&recursive=true"),
             put("/w/sub/deep", value="d"), WatchEnd("w")),
        case("w_nonrecursive_dir_ignores_children", put("/w", dir="true"), watch("w", "/w"),
             put("/w/child", value="c"), WatchQuiet("w"), put("/w", dir="true", prevExist="true", ttl="1000"),
             WatchEnd("w")),
        case("w_dir_delete_fires_descendant", put("/w2/leaf", value="l"), watch("w", "/w2/leaf"),
             delete("/w2", "recursive=true"), WatchEnd("w")),
        case("w_dir_delete_fires_deep_descendant", put("/w2/a/b/c", value="l"), watch("w", "/w2/a/b/c"),
             delete("/w2/a", "recursive=true"), WatchEnd("w")),
        case("w_delete_event", put("/k", value="v"), watch("w", "/k"), delete("/k"), WatchEnd("w")),
        case("w_cas_event", put("/k", value="v"), watch("w", "/k"), put("/k", value="w", prevValue="v"),
             WatchEnd("w")),
        case("w_cad_event", put("/k", value="v"), watch("w", "/k"), delete("/k", "prevValue=v"), WatchEnd("w")),
        case("w_waitindex_history", put("/wi/a", value="1"), put("/wi/b", value="2"), put("/wi/a", value="3"),
             watch("w", "/wi/a", "wait=true&waitIndex={base+1}"), WatchEnd("w")),
        case("w_waitindex_history_skip", put("/wi/a", value="1"), put("/wi/b", value="2"), put("/wi/a", value="3"),
             watch("w", "/wi/a", "wait=true&waitIndex={base+2}"), WatchEnd("w")),
        case("w_waitindex_recursive_history", put("/wi/x", value="1"), put("/wi/y/z", value="2"),
             watch("w", "/wi", "wait=true&recursive=true&waitIndex={base+2}"), WatchEnd("w")),
        case("w_waitindex_future", watch("w", "/k", "wait=true&waitIndex={base+3}"), put("/k", value="1"),
             WatchQuiet("w"), put("/other", value="2"), put("/k", value="3"), WatchEnd("w")),
        case("w_waitindex_zero", put("/k", value="0"), watch("w", "/k", "wait=true&waitIndex=0"),
             put("/k", value="1"), WatchEnd("w")),
        case("w_waitindex_body_ignored_for_get", put("/k", value="0"),
             Send(req("GET", keys("/k", "wait=true&waitIndex={base+1}"), form={"waitIndex": "x"}))),
        case("w_update_dir_ttl_event", put("/w", dir="true"), watch("w", "/w"),
             put("/w", dir="true", prevExist="true", ttl="1000"), WatchEnd("w")),
        case("w_expire_index_header", put("/a", value="1"), watch("w", "/b"), put("/b", value="2"), WatchEnd("w")),
        case("w_parent_set_nonrecursive", put("/p/c", value="1"), watch("w", "/p/c"), put("/p/d", value="2"),
             WatchQuiet("w"), put("/p/c", value="3"), WatchEnd("w")),
        case("w_recursive_file_watch", put("/f", value="1"), watch("w", "/f", "wait=true&recursive=true"),
             put("/f", value="2"), WatchEnd("w")),
        case("w_stream", watch("s", "/st", "wait=true&stream=true&recursive=true"), put("/st/k1", value="1"),
             put("/st/k2", value="2"), put("/st/k3", value="3"), StreamRead("s", 3)),
        case("w_stream_history_then_live", put("/st/k0", value="0"),
             watch("s", "/st", "wait=true&stream=true&recursive=true&waitIndex={base+1}"),
             put("/st/k1", value="1"), StreamRead("s", 2, timeout=1.5)),  # etcd: history hit ends the stream
        case("w_stream_single_key", watch("s", "/sk", "wait=true&stream=true"), put("/sk", value="1"),
             delete("/sk"), StreamRead("s", 2)),
        case("w_history_cleared_401", Bulk("/v2/keys{ns}/h", 1001),
             get("/h", "wait=true&waitIndex={base+1}"),
             watch("w", "/h", "wait=true&waitIndex={base+2}"), WatchEnd("w")),
    ]


# ----------------------------------------------------------------------------------------------
# §7 TTL expiry (timing dependent; each case waits until its keys are gone)
# ----------------------------------------------------------------------------------------------


def ttl_cases() -> list[Case]:
    return [
        case("ttl_expire_watch_and_index", put("/ex/k", value="v", ttl="1"), get("/ex/k"),
             watch("w", "/ex/k"), WatchEnd("w", 5), get("/ex/k"), get("/ex"), put("/after", value="a")),
        case("ttl_dir_expiry_fires_descendant", put("/ed", dir="true", ttl="1"), put("/ed/c/leaf", value="x"),
             watch("w", "/ed/c/leaf"), WatchEnd("w", 5), get("/ed/c/leaf"), get("/ed")),
        # ttl=0: etcd expires at its next ~500 ms sync, so the index at watch registration is timing dependent.
        case("ttl_zero", put("/z", value="v", ttl="0"), watch("w", "/z", "wait=true&waitIndex={base+1}", IDX),
             WatchEnd("w"), watch("w2", "/z", "wait=true&waitIndex={base+2}", IDX), WatchEnd("w2", 5), get("/z"),
             put("/after", value="a")),
        case("ttl_ceiling", put("/c", value="v", ttl="300"), Sleep(1.2), get("/c"),
             put("/c", value="w", prevExist="true", ttl="300")),
        case("ttl_refresh_then_expire", put("/r", value="v", ttl="1"), put("/r", refresh="true", ttl="2",
                                                                              prevExist="true"),
             watch("w", "/r"), WatchEnd("w", 6), get("/r")),
    ]


# ----------------------------------------------------------------------------------------------
# §9 members, §10 stats, §11 version/health/machines/auth
# ----------------------------------------------------------------------------------------------


def capture_member(body: Any) -> dict[str, str]:
    m = body["members"][0]
    return {"mid": m["id"], "peer": m["peerURLs"][0]}


def members_cases() -> list[Case]:
    post_json = "/v2/members"
    return [
        case("m_list", send("GET", "/v2/members")),
        case("m_list_slash", send("GET", "/v2/members/")),
        case("m_leader", send("GET", "/v2/members/leader")),
        case("m_get_other", send("GET", "/v2/members/foo")),
        case("m_get_own_id", send("GET", "/v2/members", capture=capture_member), send("GET", "/v2/members/{mid}")),
        case("m_post_form_type", send("POST", post_json, form='{"peerURLs":["http://127.0.0.1:1"]}')),
        case("m_post_no_type", send("POST", post_json, body='{"peerURLs":["http://127.0.0.1:1"]}')),
        case("m_post_text_type", send("POST", post_json, body='{"peerURLs":["http://127.0.0.1:1"]}',
                                      content_type="text/plain")),
        case("m_post_bad_json", send("POST", post_json, body="{bad json", content_type=JSON_CT)),
        case("m_post_not_a_url", send("POST", post_json, body='{"peerURLs":["not a url"]}', content_type=JSON_CT)),
        case("m_post_empty_list", send("POST", post_json, body='{"peerURLs":[]}', content_type=JSON_CT)),
        case("m_post_empty_object", send("POST", post_json, body="{}", content_type=JSON_CT)),
        case("m_post_duplicate_peer", send("GET", "/v2/members", capture=capture_member),
             send("POST", post_json, body='{"peerURLs":["{peer}"]}', content_type=JSON_CT)),
        case("m_post_duplicate_peer_charset", send("GET", "/v2/members", capture=capture_member),
             send("POST", post_json, body='{"peerURLs":["{peer}"]}', content_type="application/json; charset=utf-8")),
        case("m_delete_unknown", send("DELETE", "/v2/members/abcdef0123456789")),
        case("m_delete_bad_id", send("DELETE", "/v2/members/zzz")),
        case("m_put_unknown", send("PUT", "/v2/members/abcdef0123456789",
                                   body='{"peerURLs":["http://127.0.0.1:1"]}', content_type=JSON_CT)),
        case("m_put_own_same_peer", send("GET", "/v2/members", capture=capture_member),
             send("PUT", "/v2/members/{mid}", body='{"peerURLs":["{peer}"]}', content_type=JSON_CT),
             get("/after-member-update-missing"), send("GET", "/v2/members")),
        case("m_put_own_bad_type", send("GET", "/v2/members", capture=capture_member),
             send("PUT", "/v2/members/{mid}", body='{"peerURLs":["{peer}"]}')),
        case("m_put_own_bad_json", send("GET", "/v2/members", capture=capture_member),
             send("PUT", "/v2/members/{mid}", body="[", content_type=JSON_CT)),
        case("m_machines", send("GET", "/v2/machines"), send("HEAD", "/v2/machines")),
    ]


def misc_endpoint_cases() -> list[Case]:
    return [
        case("s_self", send("GET", "/v2/stats/self")),
        case("s_store", send("GET", "/v2/stats/store")),
        case("s_leader", send("GET", "/v2/stats/leader")),
        case("s_self_query_ignored", send("GET", "/v2/stats/self?x=1")),
        case("x_version", send("GET", "/version")),
        case("x_health", send("GET", "/health")),
        case("x_auth_enable", send("GET", "/v2/auth/enable")),
        case("x_auth_users", send("GET", "/v2/auth/users")),
        case("x_auth_roles", send("GET", "/v2/auth/roles")),
    ]


def all_cases() -> list[Case]:
    groups = [routing_cases, param_source_cases, bool_cases, number_cases, validation_order_cases, keypath_cases,
              hidden_cases, node_cases, put_cases, refresh_cases, novalue_cases, post_cases, delete_cases,
              watch_cases, ttl_cases, members_cases, misc_endpoint_cases]
    out: list[Case] = []
    for g in groups:
        out += [Case(c.name, c.steps, g.__name__.removesuffix("_cases")) for c in g()]
    return out


CASES: list[Case] = all_cases()
