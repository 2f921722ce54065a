"""kill -9 in the middle of a write load: every acknowledged write survives the restart."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from tests.support.servers import Server

from ._http import RawConn, dump, flatten
from .conftest import MakeServer

THREADS = 6
ROUNDS = 3


@dataclass
class Writer:
    """One client thread: unique keys, plus overwrites of one shared counter key per thread."""

    tid: int
    round_no: int
    acked: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (value, modifiedIndex)
    counter_attempts: list[str] = field(default_factory=list)  # values sent to the counter key, in order
    counter_acked: tuple[str, int] | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def counter_key(self) -> str:
        return f"/load/counter{self.tid}"

    def run(self, port: int, stop: threading.Event) -> None:
        try:
            conn = RawConn(port, timeout=5)
        except OSError as e:
            self.errors.append(f"connect: {e}")
            return
        n = 0
        try:
            while not stop.is_set():
                n += 1
                value = f"r{self.round_no}-t{self.tid}-{n}-{uuid.uuid4().hex[:8]}"
                if n % 4 == 0:
                    key = self.counter_key
                    self.counter_attempts.append(value)
                else:
                    key = f"/load/r{self.round_no}/t{self.tid}/k{n}"
                r = conn.call("PUT", f"/v2/keys{key}", form={"value": value})
                if r.status not in (200, 201):
                    self.errors.append(f"{key}: {r.status} {r.body!r}")
                    return
                node = r.json()["node"]
                if node["value"] != value or node["key"] != key:
                    self.errors.append(f"{key}: answered with {node}")
                    return
                if key == self.counter_key:
                    self.counter_acked = (value, node["modifiedIndex"])
                else:
                    self.acked[key] = (value, node["modifiedIndex"])
        except (OSError, ValueError):
            pass  # the server was killed under us: the write in flight is unacknowledged
        finally:
            conn.close()


def _load_then_kill(srv: Server, round_no: int, run_s: float) -> list[Writer]:
    stop = threading.Event()
    writers = [Writer(t, round_no) for t in range(THREADS)]
    threads = [threading.Thread(target=w.run, args=(srv.port, stop), daemon=True) for w in writers]
    for t in threads:
        t.start()
    time.sleep(run_s)
    srv.kill9()  # mid-load: writers are blocked on answers at this moment
    stop.set()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    for w in writers:
        assert not w.errors, w.errors
    return writers


def test_acknowledged_writes_survive_kill9_under_load(make_server: MakeServer) -> None:
    srv = make_server().start()
    all_acked: dict[str, tuple[str, int]] = {}
    counters: dict[str, tuple[list[str], tuple[str, int] | None]] = {}
    for round_no in range(ROUNDS):
        writers = _load_then_kill(srv, round_no, run_s=1.0 + 0.3 * round_no)
        acked_now = sum(len(w.acked) for w in writers)
        assert acked_now > 50, f"round {round_no}: only {acked_now} writes acknowledged"
        for w in writers:
            all_acked.update(w.acked)
            attempts, acked = counters.get(w.counter_key, ([], None))
            counters[w.counter_key] = (attempts + w.counter_attempts, w.counter_acked or acked)
        indexes = [i for _, i in all_acked.values()]
        assert len(set(indexes)) == len(indexes), "two acknowledged writes share a modifiedIndex"

        srv.start()
        etcd_index, tree = dump(srv.port, "/load")
        nodes = flatten(tree)
        missing = [k for k in all_acked if k not in nodes]
        assert not missing, f"round {round_no}: {len(missing)} acknowledged keys lost, e.g. {missing[:5]}"
        wrong = [(k, all_acked[k], nodes[k].get("value"), nodes[k].get("modifiedIndex"))
                 for k in all_acked if (nodes[k].get("value"), nodes[k].get("modifiedIndex")) != all_acked[k]]
        assert not wrong, f"round {round_no}: acknowledged writes changed: {wrong[:5]}"
        assert etcd_index >= max(indexes)
        for key, (attempts, acked) in counters.items():
            if acked is None:
                continue
            node = nodes[key]
            # the last acknowledged value, or a later one whose answer was lost in the kill
            later = attempts[attempts.index(acked[0]):]
            assert node["value"] in later, (key, node, acked)
            assert node["modifiedIndex"] >= acked[1]
        # an unacknowledged key that made it must still be a fully formed write
        for key, node in nodes.items():
            if key.startswith("/load/r") and not node.get("dir") and key not in all_acked:
                assert node["value"].startswith(f"r{key.split('/')[2][1:]}-"), node
    assert "Traceback" not in srv.log_tail(200000)
