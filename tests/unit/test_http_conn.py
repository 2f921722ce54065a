"""ServerConn (http/conn.py): the HTTP/1.1 connection state machine, driven with byte strings (no sockets)."""

from __future__ import annotations

import inspect

import h11
import pytest
from pyetcd.http import conn as conn_mod
from pyetcd.http.client_api import NOT_FOUND, Reply
from pyetcd.http.conn import (
    HEADER_BYTES_MAX,
    OUTPUT_BYTES_MAX,
    PIPELINE_BYTES_MAX,
    REQUEST_IDLE_S,
    WATCH_OUTPUT_BYTES_MAX,
    HttpRequest,
    ServerConn,
    trusted_response,
)

DATE = b"Mon, 02 Jan 2006 15:04:05 GMT"
JSON = [(b"Content-Type", b"application/json")]
GET_A = b"GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n\r\n"
BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
               b"Connection: close\r\n\r\n400 Bad Request")
TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
             b"Connection: close\r\n\r\n431 Request Header Fields Too Large")
VERSION = (b"HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version\r\nContent-Type: text/plain; "
           b"charset=utf-8\r\nConnection: close\r\n\r\n505 HTTP Version Not Supported: unsupported protocol version")


def ok(body: bytes = b"{}") -> Reply:
    return Reply(200, list(JSON), body)


def response_bytes(body: bytes = b"{}", status: bytes = b"200 OK") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nDate: " + DATE
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def fed(data: bytes, body_max: int = 1024, now_s: float = 100.0) -> ServerConn:
    c = ServerConn(body_max, now_s=0.0)
    c.receive(data, now_s)
    return c


def take(c: ServerConn) -> bytes:
    """What the shell would send, removed from the connection."""
    out = bytes(c.out)
    del c.out[:]
    return out


def parse_responses(data: bytes, methods: list[bytes]) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    """A client's view of `data`: (status, headers, body) for each request method sent, in order."""
    client = h11.Connection(h11.CLIENT)
    results = []
    client.receive_data(data)
    client.receive_data(b"")  # the server closed after the last one
    for method in methods:
        client.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"x")]))
        client.send(h11.EndOfMessage())
        status, headers, body = 0, [], b""
        while True:
            event = client.next_event()
            if type(event) is h11.Response:
                status, headers = event.status_code, event.headers.raw_items()
            elif type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                break
            else:
                raise AssertionError(event)
        results.append((status, headers, body))
        if client.our_state is h11.DONE and client.their_state is h11.DONE:
            client.start_next_cycle()
    return results


# ---- requests and replies -------------------------------------------------------------------------


def test_get_and_its_reply_bytes() -> None:
    c = fed(GET_A)
    req = c.next_request()
    assert req == HttpRequest("GET", b"/v2/keys/a", [(b"Host", b"x")], b"")
    assert c.busy and c.out == b""
    c.reply(ok(b'{"k":1}'), DATE)
    assert take(c) == response_bytes(b'{"k":1}')
    assert not c.busy and not c.closing and not c.closed
    assert c.next_request() is None  # nothing more received


def test_keep_alive_second_request() -> None:
    c = fed(GET_A)
    assert c.next_request() is not None
    c.reply(ok(b"1"), DATE)
    assert take(c) == response_bytes(b"1")
    c.receive(b"PUT /v2/keys/b HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\nvalue=2", 101.0)
    assert c.next_request() == HttpRequest("PUT", b"/v2/keys/b", [(b"Host", b"x"), (b"Content-Length", b"7")],
                                           b"value=2")
    c.reply(Reply(201, list(JSON), b"2"), DATE)
    assert take(c) == response_bytes(b"2", b"201 Created")
    assert not c.closing


def test_pipelined_requests_are_handed_out_one_at_a_time_in_order() -> None:
    c = fed(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"PUT /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    first = c.next_request()
    assert first is not None and first.target == b"/1"
    assert c.next_request() is None  # busy: /2 waits until /1 is answered
    c.reply(ok(b"one"), DATE)
    second = c.next_request()
    assert second is not None and second.target == b"/2"
    c.reply(ok(b"two"), DATE)
    third = c.next_request()
    assert third == HttpRequest("PUT", b"/3", [(b"Host", b"x"), (b"Content-Length", b"3")], b"abc")
    c.reply(ok(b"three"), DATE)
    assert c.next_request() is None
    assert take(c) == response_bytes(b"one") + response_bytes(b"two") + response_bytes(b"three")


def test_head_sends_the_gets_content_length_and_no_body() -> None:
    c = fed(b"HEAD /v2/keys/a HTTP/1.1\r\nHost: x\r\n\r\n" + GET_A)
    req = c.next_request()
    assert req is not None and req.method == "HEAD"
    c.reply(Reply(200, list(JSON), b"0123456789", head=True), DATE)
    assert take(c) == (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: " + DATE
                       + b"\r\nContent-Length: 10\r\n\r\n")
    assert c.next_request() is not None  # the GET behind it: the HEAD response is complete
    c.reply(ok(b"0123456789"), DATE)
    assert take(c) == response_bytes(b"0123456789")


def test_head_with_no_length_sends_no_content_length() -> None:
    c = fed(b"HEAD /v2/keys/../a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.next_request() is not None
    c.reply(Reply(301, [(b"Location", b"/a")], b"", head=True, no_length=True), DATE)
    # Go (etcd 3.4, checked with curl -I) sends neither a length nor chunking; h11 alone would say chunked
    assert take(c) == b"HTTP/1.1 301 Moved Permanently\r\nLocation: /a\r\nDate: " + DATE + b"\r\n\r\n"
    assert not c.closing


def test_204_has_no_content_length() -> None:
    c = fed(b"DELETE /v2/members/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.next_request() is not None
    c.reply(Reply(204, [(b"X-Etcd-Cluster-Id", b"abc")], b""), DATE)
    assert take(c) == b"HTTP/1.1 204 No Content\r\nX-Etcd-Cluster-Id: abc\r\nDate: " + DATE + b"\r\n\r\n"
    assert not c.closing


def test_reply_does_not_change_the_reply_it_is_given() -> None:
    """NOT_FOUND is one shared Reply: answering it twice gives the same bytes twice."""
    before = list(NOT_FOUND.headers)
    c = fed(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.next_request() is not None
    c.reply(NOT_FOUND, DATE)
    first = take(c)
    assert c.next_request() is not None
    c.reply(NOT_FOUND, DATE)
    assert take(c) == first
    assert NOT_FOUND.headers == before
    assert first.count(b"Date: ") == 1 and first.endswith(b"Content-Length: 19\r\n\r\n404 page not found\n")


def test_connection_close_request_makes_the_connection_closing() -> None:
    c = fed(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + GET_A)
    assert c.next_request() is not None
    c.reply(ok(), DATE)
    assert take(c) == (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: " + DATE
                       + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    assert c.closing and not c.closed
    assert c.next_request() is None  # the pipelined GET after "close" is never served


def test_http_1_0_gets_an_answer_then_closing() -> None:
    c = fed(b"GET /a HTTP/1.0\r\n\r\n")
    assert c.next_request() == HttpRequest("GET", b"/a", [], b"")
    c.reply(ok(), DATE)
    assert take(c) == (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: " + DATE
                       + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    assert c.closing


def test_100_continue_when_the_client_waits_for_it() -> None:
    c = fed(b"PUT /v2/keys/a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 7\r\n\r\n")
    assert c.next_request() is None
    assert take(c) == b"HTTP/1.1 100 \r\n\r\n"
    c.receive(b"value=1", 101.0)
    req = c.next_request()
    assert req is not None and req.body == b"value=1"
    assert c.out == b""  # only once
    c.reply(ok(), DATE)
    assert take(c) == response_bytes()


def test_100_continue_even_when_the_body_came_along() -> None:
    """h11 still counts the client as waiting when the headers are parsed; the loop answered 100 then too."""
    c = fed(b"PUT /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nv")
    req = c.next_request()
    assert req is not None and req.body == b"v"
    assert take(c) == b"HTTP/1.1 100 \r\n\r\n"


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
    b"PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",  # h11 hints 501; Go says 400
])
def test_malformed_request_gets_the_400_bytes_and_closing(data: bytes) -> None:
    c = fed(data)
    assert c.next_request() is None
    assert take(c) == BAD_REQUEST
    assert c.closing and not c.closed
    c.receive(GET_A, 101.0)  # dropped
    assert c.next_request() is None and c.out == b""


def test_malformed_request_after_a_good_one_is_answered_after_it() -> None:
    c = fed(GET_A + b"GARBAGE\r\n\r\n")
    assert c.next_request() is not None
    assert c.out == b""  # not parsed while busy
    c.reply(ok(), DATE)
    assert c.next_request() is None
    assert take(c) == response_bytes() + BAD_REQUEST
    assert c.closing


def test_http_2_request_line_gets_505() -> None:
    c = fed(b"GET /a HTTP/2.0\r\nHost: x\r\n\r\n")
    assert c.next_request() is None
    assert take(c) == VERSION
    assert c.closing


def test_header_block_over_the_limit_in_one_piece_gets_431() -> None:
    # target (1) + Host (4 + 1 + 4) + X (1 + value + 4) == HEADER_BYTES_MAX is accepted, one byte more is not
    value = b"v" * (HEADER_BYTES_MAX - 15)
    c = fed(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + value + b"\r\n\r\n")
    req = c.next_request()
    assert req is not None and req.headers == [(b"Host", b"x"), (b"X", value)]
    c = fed(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + value + b"v\r\n\r\n")
    assert c.next_request() is None
    assert take(c) == TOO_LARGE
    assert c.closing


def test_header_block_growing_past_the_limit_gets_431() -> None:
    c = ServerConn(1024, now_s=0.0)
    c.receive(b"GET / HTTP/1.1\r\nHost: x\r\n", 1.0)
    piece = b"X-Pad: " + b"p" * (64 * 1024) + b"\r\n"
    sent = 0
    while not c.closing:
        c.receive(piece, 1.0)
        sent += len(piece)
        assert c.next_request() is None
        assert sent < HEADER_BYTES_MAX + 2 * len(piece)
    assert sent > HEADER_BYTES_MAX
    assert take(c) == TOO_LARGE


def test_body_over_the_maximum_keeps_max_plus_one_bytes() -> None:
    body = bytes(range(256)) * 4
    c = fed(b"PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n" + body[:300], body_max=100)
    assert c.next_request() is None
    c.receive(body[300:], 101.0)
    req = c.next_request()
    assert req is not None and req.body == body[:101]
    c.reply(ok(), DATE)
    assert take(c) == response_bytes()
    assert not c.closing  # the whole body was read: the connection stays usable


def test_chunked_body_at_the_maximum_is_kept_whole() -> None:
    c = fed(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", body_max=10)
    req = c.next_request()
    assert req is not None and req.body == b"helloworld"


# ---- watches --------------------------------------------------------------------------------------


def test_long_poll_watch_start_one_chunk_end() -> None:
    c = fed(b"GET /v2/keys/a?wait=true HTTP/1.1\r\nHost: x\r\n\r\n" + GET_A)
    assert c.next_request() is not None
    c.start_stream(200, list(JSON), DATE)
    assert take(c) == (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: " + DATE
                       + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert c.busy and c.next_request() is None
    c.send_chunk(b'{"action":"set"}')
    c.end_stream()
    assert take(c) == b'10\r\n{"action":"set"}\r\n0\r\n\r\n'
    assert not c.busy and not c.closing
    req = c.next_request()
    assert req is not None and req.target == b"/v2/keys/a"


def test_stream_watch_backlog_grows_until_it_must_be_dropped() -> None:
    c = fed(b"GET /v2/keys/a?wait=true&stream=true HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.next_request() is not None
    c.start_stream(200, list(JSON), DATE)
    head = len(c.out)
    c.send_chunk(b"event1")
    c.send_chunk(b"event2")
    assert bytes(c.out[head:]) == b"6\r\nevent1\r\n6\r\nevent2\r\n"
    assert c.backlog() == head + 22 and c.backlog(wire_bytes=1000) == head + 1022
    assert not c.stream_overflowing()
    assert not c.stream_overflowing(wire_bytes=WATCH_OUTPUT_BYTES_MAX - c.backlog())
    assert c.stream_overflowing(wire_bytes=WATCH_OUTPUT_BYTES_MAX - c.backlog() + 1)
    del c.out[:]  # the client read it all
    c.send_chunk(b"x" * WATCH_OUTPUT_BYTES_MAX)
    assert c.backlog() == WATCH_OUTPUT_BYTES_MAX + len(b"800000\r\n\r\n")
    assert c.stream_overflowing()
    assert c.busy and not c.should_abandon(1e9)  # an open watch is never reaped


def test_watch_on_http_1_0_is_delimited_by_close() -> None:
    c = fed(b"GET /v2/keys/a?wait=true HTTP/1.0\r\n\r\n")
    assert c.next_request() is not None
    c.start_stream(200, list(JSON), DATE)
    c.send_chunk(b"{}")
    c.end_stream()
    assert take(c) == (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: " + DATE
                       + b"\r\nConnection: close\r\n\r\n{}")
    assert c.closing


def test_head_watch_sends_headers_and_no_body() -> None:
    c = fed(b"HEAD /v2/keys/a?wait=true HTTP/1.1\r\nHost: x\r\n\r\n" + GET_A)
    assert c.next_request() is not None
    c.start_stream(200, list(JSON), DATE)
    c.send_chunk(b'{"action":"set"}')
    c.end_stream()
    assert take(c) == b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: " + DATE + b"\r\n\r\n"
    assert not c.closed and not c.busy
    assert c.next_request() is not None


def test_watch_error_reply_instead_of_a_stream() -> None:
    c = fed(b"GET /v2/keys/a?wait=true&waitIndex=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.next_request() is not None
    c.reply(Reply(400, list(JSON), b"{}"), DATE)
    assert take(c) == response_bytes(status=b"400 Bad Request")


# ---- backpressure ---------------------------------------------------------------------------------


def test_output_backpressure_stops_requests_and_resumes_below_half() -> None:
    c = fed(GET_A * 3)
    assert c.next_request() is not None
    c.reply(ok(), DATE)
    unsent = len(c.out)
    over = OUTPUT_BYTES_MAX - unsent + 1  # e.g. TLS ciphertext the shell has not sent yet
    assert c.next_request(wire_bytes=over) is None
    assert not c.wants_read(wire_bytes=over)
    # between half and the maximum: still paused (hysteresis)
    assert c.next_request(wire_bytes=OUTPUT_BYTES_MAX // 2 - unsent + 1) is None
    assert not c.wants_read(wire_bytes=OUTPUT_BYTES_MAX // 2 - unsent + 1)
    assert c.backlog(wire_bytes=OUTPUT_BYTES_MAX // 2 - unsent + 1) == OUTPUT_BYTES_MAX // 2 + 1
    # drained to half: reading and serving resume, the pipelined requests come out in order
    assert c.wants_read(wire_bytes=OUTPUT_BYTES_MAX // 2 - unsent)
    second = c.next_request(wire_bytes=OUTPUT_BYTES_MAX // 2 - unsent)
    assert second is not None and second.target == b"/v2/keys/a"
    c.reply(ok(), DATE)
    assert c.next_request() is not None
    c.reply(ok(), DATE)
    assert take(c) == response_bytes() * 3


def test_a_completed_response_lifts_the_output_pause_until_the_maximum() -> None:
    """As in the loop: finishing a response resumes reading; only a backlog over the maximum pauses again."""
    c = fed(GET_A * 3)
    assert c.next_request() is not None
    assert not c.wants_read(wire_bytes=OUTPUT_BYTES_MAX + 1)
    assert not c.wants_read(wire_bytes=OUTPUT_BYTES_MAX // 2)  # busy: stays paused until the response
    c.reply(ok(), DATE)
    wire = OUTPUT_BYTES_MAX - len(c.out)
    assert c.wants_read(wire)
    assert c.next_request(wire) is not None
    c.reply(ok(), DATE)
    assert c.next_request(wire) is None and not c.wants_read(wire)  # now over the maximum


def test_output_backpressure_counts_unsent_plaintext() -> None:
    c = fed(GET_A * 2)
    assert c.next_request() is not None
    c.reply(ok(b"x" * (OUTPUT_BYTES_MAX // 2)), DATE)
    wire = OUTPUT_BYTES_MAX + 1 - len(c.out)  # plaintext + ciphertext: one byte over the maximum
    assert c.backlog(wire) == OUTPUT_BYTES_MAX + 1
    assert not c.wants_read(wire) and c.next_request(wire) is None
    del c.out[:OUTPUT_BYTES_MAX // 2]  # the shell sent half of it
    assert c.backlog(wire) == OUTPUT_BYTES_MAX // 2 + 1
    assert not c.wants_read(wire) and c.next_request(wire) is None
    del c.out[:1]
    assert c.wants_read(wire)
    req = c.next_request(wire)
    assert req is not None and c.busy


def test_pipelined_input_is_bounded_while_busy() -> None:
    c = fed(GET_A)
    assert c.next_request() is not None
    pipelined = GET_A * (PIPELINE_BYTES_MAX // len(GET_A))
    c.receive(pipelined, 101.0)
    assert len(pipelined) <= PIPELINE_BYTES_MAX
    assert c.wants_read()  # exactly at the bound: still reading
    c.receive(GET_A, 101.0)
    assert not c.wants_read()  # over it while busy: stop reading until the response is done
    assert c.next_request() is None
    c.reply(ok(), DATE)
    assert c.wants_read()
    req = c.next_request()
    assert req is not None and req.target == b"/v2/keys/a"
    assert c.wants_read()  # busy again, but the buffer no longer exceeds the bound


# ---- housekeeping and the end ---------------------------------------------------------------------


def test_slowloris_stalled_body_is_abandoned() -> None:
    c = fed(b"PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", now_s=100.0)
    assert c.next_request() is None and not c.busy
    assert not c.should_abandon(100.0 + REQUEST_IDLE_S - 0.001)
    assert c.should_abandon(100.0 + REQUEST_IDLE_S)
    c.receive(b"de", 150.0)  # bytes still trickle in: the clock restarts
    assert c.next_request() is None
    assert not c.should_abandon(150.0 + REQUEST_IDLE_S - 0.001)
    c.touch(200.0)  # e.g. a TLS record in progress
    assert not c.should_abandon(150.0 + REQUEST_IDLE_S)
    assert c.should_abandon(200.0 + REQUEST_IDLE_S)


def test_slowloris_stalled_header_is_abandoned() -> None:
    c = fed(b"GET /a HTTP/1.1\r\nHo", now_s=100.0)
    assert c.next_request() is None
    assert c.should_abandon(100.0 + REQUEST_IDLE_S)


def test_idle_keep_alive_connection_is_kept() -> None:
    c = fed(GET_A, now_s=100.0)
    assert c.next_request() is not None
    c.reply(ok(), DATE)
    assert c.next_request() is None
    assert not c.should_abandon(100.0 + 10 * REQUEST_IDLE_S)
    assert not ServerConn(1024, now_s=0.0).should_abandon(10 * REQUEST_IDLE_S)


def test_connection_owed_a_response_is_kept() -> None:
    c = fed(GET_A + b"GET /a HTTP/1.1\r\nHo", now_s=100.0)  # a partial pipelined request behind it
    assert c.next_request() is not None
    assert not c.should_abandon(100.0 + 10 * REQUEST_IDLE_S)
    c.reply(ok(), DATE)
    assert c.next_request() is None
    assert c.should_abandon(100.0 + 10 * REQUEST_IDLE_S)  # answered; the partial one stalled


def test_eof_closes() -> None:
    c = fed(b"GET /a HTTP/1.1\r\nHo")
    c.receive(b"", 101.0)
    assert c.closed and not c.wants_read()
    assert c.next_request() is None
    assert not c.should_abandon(1e9)


def test_eof_while_a_response_is_owed_closes_and_the_reply_is_dropped() -> None:
    c = fed(GET_A)
    assert c.next_request() is not None
    c.receive(b"", 101.0)
    assert c.closed
    c.reply(ok(), DATE)
    assert c.out == b""


def test_eof_after_pipelined_requests_still_closes() -> None:
    c = fed(GET_A * 2)
    c.receive(b"", 101.0)
    assert c.closed and c.next_request() is None


def test_a_reply_nobody_is_owed_is_ignored() -> None:
    c = fed(GET_A)
    c.reply(ok(), DATE)  # nothing was handed out yet
    c.start_stream(200, list(JSON), DATE)
    c.send_chunk(b"{}")
    c.end_stream()
    assert c.out == b"" and not c.closed and not c.busy
    assert c.next_request() is not None


def test_a_response_h11_refuses_closes_the_connection() -> None:
    c = fed(GET_A)
    assert c.next_request() is not None
    c.reply(Reply(200, [(b"Content-Length", b"5")], b"{}"), DATE)  # conflicts with the real length
    assert c.closed and c.out == b""


# ---- the private h11 fast path --------------------------------------------------------------------


def _exchange() -> bytes:
    c = fed(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"DELETE /3 HTTP/1.1\r\nHost: x\r\n\r\nGET /4 HTTP/1.1\r\nHost: x\r\n\r\nGET /5 HTTP/1.0\r\n\r\n")
    headers = [(b"Access-Control-Allow-Origin", b"*"), (b"Content-Type", b"application/json"),
               (b"X-Etcd-Index", b"12"), (b"X-Raft-Index", b"34"), (b"X-Raft-Term", b"2")]
    assert c.next_request() is not None
    c.reply(Reply(200, list(headers), b'{"a":1}'), DATE)
    assert c.next_request() is not None
    c.reply(Reply(404, list(headers), b'{"a":1}', head=True), DATE)
    assert c.next_request() is not None
    c.reply(Reply(204, list(headers), b""), DATE)
    assert c.next_request() is not None
    c.start_stream(200, list(headers), DATE)
    c.send_chunk(b"{}")
    c.end_stream()
    assert c.next_request() is not None
    c.start_stream(200, list(headers), DATE)
    c.send_chunk(b"{}")
    c.end_stream()
    assert c.closing
    return take(c)


def test_private_fast_path_is_used_exactly_when_h11_has_it() -> None:
    has_it = "_parsed" in inspect.signature(h11.Response.__init__).parameters
    assert conn_mod.SKIP_HEADER_VALIDATION is has_it
    assert conn_mod._h11_takes_parsed() is has_it


def test_private_peek_at_the_receive_buffer_is_used_with_this_h11() -> None:
    assert conn_mod.PEEK_RECEIVE_BUFFER is conn_mod._h11_buffer_visible() is True


def test_public_fallback_gives_identical_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _exchange()
    monkeypatch.setattr(conn_mod, "SKIP_HEADER_VALIDATION", False)
    monkeypatch.setattr(conn_mod, "PEEK_RECEIVE_BUFFER", False)
    slow = _exchange()
    assert slow == fast
    statuses = [s for s, _, _ in parse_responses(fast, [b"GET", b"HEAD", b"DELETE", b"GET", b"GET"])]
    assert statuses == [200, 404, 204, 200, 200]
    headers = [(b"Date", DATE), (b"Content-Length", b"2")]
    assert trusted_response(200, headers) == h11.Response(status_code=200, headers=headers, reason=b"OK")


def test_public_fallback_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conn_mod, "SKIP_HEADER_VALIDATION", False)
    with pytest.raises(h11.LocalProtocolError):
        trusted_response(200, [(b"Bad Name", b"1")])
    c = fed(GET_A)
    assert c.next_request() is not None
    c.reply(Reply(200, [(b"X", b"a\r\nInjected: 1")], b""), DATE)
    assert c.closed and c.out == b""


def test_trusted_request_equals_the_validated_one(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = [(b"Host", b"m:2379"), (b"Content-Type", b"application/x-www-form-urlencoded"),
               (b"X-Forwarded-For", b"10.0.0.1"), (b"Content-Length", b"7")]
    fast = conn_mod.trusted_request(b"PUT", b"/v2/keys/a?prevExist=false", headers)
    assert fast == h11.Request(method=b"PUT", target=b"/v2/keys/a?prevExist=false", headers=headers)
    monkeypatch.setattr(conn_mod, "SKIP_HEADER_VALIDATION", False)
    with pytest.raises(h11.LocalProtocolError):
        conn_mod.trusted_request(b"GET", b"/", [(b"Bad Name", b"1"), (b"Host", b"h")])
