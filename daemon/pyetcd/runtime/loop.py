"""The event loop: the shell around the member driver. The only place with sockets, the selector, timers,
signals, the fsync calls and the watchdog; every decision is made by sans-IO parts it feeds:
server/driver.py (the member), http/conn.py (each HTTP/1.1 connection, carried by connections.py),
runtime/serving.py (what a request becomes), runtime/transport.py (peer links).

One turn: select -> accept, read (decrypting TLS) and hand complete requests to the APIs and the driver
-> tick -> while the driver has a turn: write what it asks to persist and fsync it (one fdatasync: the
group commit), report the outcome, send, answer, fire watches, start snapshots -> flush every connection
with output -> watchdog and status. A snapshot is built and written by a forked child (snapshotter.py)
while the loop goes on; when it is done the loop releases the WAL it covers and tells the driver.
A full disk (DiskFull) is the driver's to handle; any other error from the disk stops the member (after a
failed fsync the page cache may have dropped our data: retrying could ack a lost write; etcd stops too,
and a supervisor restarts us from what is durable).
"""

from __future__ import annotations

import logging
import selectors
import ssl
import time

from ..server.driver import READIES_PER_TURN_MAX, MemberDriver, Output, SnapshotJob
from ..server.durable import Storage
from ..server.metrics import LoopMetrics
from ..storage.errors import DiskFull
from .addresses import AdvertisedAddresses
from .auth_gate import AuthGate
from .connections import Conn, Connections, Listener
from .member import MemberView
from .metrics import member_metrics
from .passwords import PasswordWorker
from .peers import PeerLink
from .serving import Frontend
from .snapshotter import Outcome, Snapshotter
from .stopsignals import StopSignals
from .supervision import Supervisor
from .transport import PeerTransport

log = logging.getLogger("pyetcd.loop")
wal_log = logging.getLogger("pyetcd.wal")
SLOW_FDATASYNC_S = 1.0  # etcd's warnSyncDuration: "slow fdatasync"
SLOW_APPLY_S = 0.1  # etcd's warnApplyDuration: "apply request took too long"

HOUSEKEEPING_S = 1.0


class EventLoop:
    def __init__(self, driver: MemberDriver, view: MemberView, storage: Storage, listeners: list[Listener],
                 tick_s: float = 0.1, peer_dial_tls: ssl.SSLContext | None = None, peer_allowed_cn: str = "",
                 supervisor: Supervisor | None = None, advertised: list[str] | None = None) -> None:
        self.driver, self.view, self.storage = driver, view, storage
        self.supervisor = supervisor or Supervisor({})  # sd_notify; a no-op outside systemd
        self.passwords = PasswordWorker()  # bcrypt, off the loop's thread (see auth_gate.py)
        self.front = Frontend(driver, view, lambda conn: self.connections.close(conn),
                              AuthGate(lambda: driver.auth, self.passwords))
        self.tick_s = tick_s
        self._next_tick = time.monotonic() + tick_s
        self.sel = selectors.DefaultSelector()
        self.transport = PeerTransport(self.sel, view.self_id, view.cluster_id_bytes.decode(), peer_dial_tls,
                                       peer_allowed_cn)
        view.links = self.transport.links
        self.transport.sync(driver.members)
        self.connections = Connections(self.sel, self.front)
        self.dirty = self.front.dirty
        self.running = True
        self._next_housekeeping = 0.0
        self._disk_full_logged = False
        for listener in listeners:
            listener.sock.setblocking(False)
            self.sel.register(listener.sock, selectors.EVENT_READ, listener)
        self.listeners = [listener.sock for listener in listeners]
        self.signals = StopSignals(self.sel, self.stop)
        self.sel.register(self.passwords.fileno(), selectors.EVENT_READ, self.passwords)
        self.addresses = AdvertisedAddresses(self.sel, advertised or [], self.supervisor)
        self.snapshotter = Snapshotter(self.sel, storage, self._snapshot_written)
        self.metrics = LoopMetrics()  # turn figures; GET /metrics reads them and the live state
        self.front.metrics = member_metrics(self)

    def stop(self) -> None:
        self.running = False

    # ---- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        while self.running:
            self.run_turn(self._timeout())
        self.shutdown()

    def _timeout(self) -> float:
        if self.driver.has_work():
            return 0.0  # e.g. pipelined writes offered while answering others: no sleeping
        timeout = min(HOUSEKEEPING_S, max(0.0, self._next_tick - time.monotonic()))
        due_ns = self.driver.store.next_expiry_ns()
        if due_ns:
            timeout = min(timeout, max(0.0, (due_ns - time.time_ns()) / 1e9))
        return timeout

    def run_turn(self, timeout: float) -> None:
        events = self.sel.select(timeout)
        started = time.perf_counter()
        for key, mask in events:
            data = key.data
            if type(data) is Conn:
                if mask & selectors.EVENT_READ:
                    self.connections.on_readable(data)
                if mask & selectors.EVENT_WRITE:
                    self.connections.flush(data)
            elif type(data) is PeerLink:
                self.transport.on_event(data, mask)
            elif type(data) is Listener:
                self.connections.accept(data)
            elif type(data) is AdvertisedAddresses:
                data.on_readable()
            elif type(data) is PasswordWorker:
                data.on_readable()
            elif type(data) is Snapshotter:
                data.on_readable()
            else:
                self.signals.drain()
        mono = time.monotonic()
        self._tick(mono)
        self._run_driver(mono)
        self._pump_transport(mono)
        self._flush_dirty()
        self.supervisor.on_turn(self.view, mono)
        if mono >= self._next_housekeeping:
            self._next_housekeeping = mono + HOUSEKEEPING_S
            self.connections.reap_idle(mono)
        self.metrics.turn_done(time.perf_counter() - started, self.front.requests)

    def _tick(self, mono: float) -> None:
        ticks = 0
        while mono >= self._next_tick:
            self._next_tick += self.tick_s
            ticks += 1
            if ticks > 10:  # we were stalled (e.g. SIGSTOP): do not replay a burst of ticks
                self._next_tick = mono + self.tick_s
                break
        for _ in range(min(ticks, 3)):
            self.driver.tick()

    # ---- the driver's turns --------------------------------------------------------------------

    def _run_driver(self, mono: float) -> None:
        driver = self.driver
        for _ in range(READIES_PER_TURN_MAX):
            turn = driver.next_turn(mono, time.time_ns())
            if turn is None:
                break
            self.front.answer(turn.answers)
            if turn.send_now:  # a leader's appends go out before its own fsync
                self.transport.send(turn.send_now)
                self._pump_transport(mono)
            p = turn.persist
            if p is None or turn.refused:
                self._handle(driver.persisted(turn))
                continue
            try:
                self.storage.write(p.snapshot, p.entries, p.hard_state)
                if p.must_sync:
                    started = time.monotonic()
                    self.storage.sync()
                    took = time.monotonic() - started
                    if took > SLOW_FDATASYNC_S:
                        wal_log.warning("slow fdatasync: sync duration of %.3fs, expected less than %gs", took,
                                        SLOW_FDATASYNC_S)
            except DiskFull as e:
                if not self._disk_full_logged:
                    self._disk_full_logged = True
                    log.error("disk full, writes are refused until space is freed (nothing unsaved was "
                              "acknowledged; reads, watches and heartbeats go on): %s", e)
                self._handle(driver.persist_failed(turn))
                continue
            except OSError as e:
                log.critical("WAL write/fsync failed, stopping: %s", e)
                raise SystemExit(1) from e
            if self._disk_full_logged and not driver.disk_full:
                self._disk_full_logged = False
                log.warning("the disk has room again: writes resume")
            started = time.monotonic()
            out = driver.persisted(turn)
            took = time.monotonic() - started
            if took > SLOW_APPLY_S and out.applied:
                log.warning("apply request took too long: %.3fs for %d entries, expected less than %gms", took,
                            len(out.applied), SLOW_APPLY_S * 1000)
            self._handle(out)

    def _handle(self, out: Output) -> None:
        self.transport.send(out.messages)
        if out.store_replaced:
            self.front.end_all_watches()
        if out.store_replaced or any(a.conf_change is not None for a in out.applied):
            self.transport.sync(self.driver.members)
        self.front.answer(out.answers)
        if out.fired:
            # One write may wake thousands of watchers (15,000: half a second of sends). The writers'
            # answers go out first and each watcher's event as soon as it is written, so neither waits
            # for the whole wake-up to be written (etcd's goroutines do the same).
            self._flush_dirty()
            for watcher, event in out.fired:
                self.front.fire(watcher, event)
                self._flush_dirty()
        job = out.snapshot
        if job is not None:
            self._start_snapshot(job)
        if out.removed_self:
            log.warning("this member was removed from the cluster; shutting down")
            self.running = False

    def _flush_dirty(self) -> None:
        while self.dirty:  # a flush that resumes a paused connection serves it, which may owe more output
            self.connections.flush(self.dirty.pop())

    # ---- snapshots -----------------------------------------------------------------------------

    def _start_snapshot(self, job: SnapshotJob) -> None:
        """Fork the snapshot's writer (the loop goes on); if fork fails, build and write it here."""
        if self.snapshotter.start(job):
            return
        try:
            data = job.build()
            self.storage.write_snapshot_file(job.meta, data)
        except DiskFull as e:
            self._snapshot_written(job, Outcome.DISK_FULL, str(e))
        except OSError as e:
            self._snapshot_written(job, Outcome.ERROR, str(e))
        else:
            self._snapshot_written(job, Outcome.SAVED, "")

    def _snapshot_written(self, job: SnapshotJob, outcome: Outcome, detail: str) -> None:
        """The snapshot file is written (or not): release the WAL it covers and tell the driver."""
        index = job.meta.index
        if outcome is Outcome.SAVED and self.driver.snapshot_superseded(job):
            log.info("snapshot at raft index %d superseded by the leader's (%d)", index, self.driver.snap_index)
            self.driver.snapshot_saved(job, b"")  # changes nothing but ending the job
            return
        if outcome is Outcome.SAVED:
            try:
                source = self.storage.snapshot_file_saved(job.meta)
            except DiskFull as e:
                outcome, detail = Outcome.DISK_FULL, str(e)
            except OSError as e:
                outcome, detail = Outcome.ERROR, str(e)
            else:
                self.driver.snapshot_saved(job, source)
                return
        if outcome is Outcome.ERROR:
            log.critical("snapshot write failed, stopping: %s", detail)
            raise SystemExit(1)
        if outcome is Outcome.DISK_FULL:
            log.warning("no room for a snapshot at raft index %d (retried later): %s", index, detail)
        else:
            log.warning("the writer of the snapshot at raft index %d died (retried later): %s", index, detail)
        self.driver.snapshot_failed(job)

    def _pump_transport(self, mono: float) -> None:
        reports = self.transport.pump(mono)
        for peer in reports.unreachable:
            self.driver.report_unreachable(peer)
        for peer, ok in reports.snapshots:
            self.driver.report_snapshot(peer, ok)
        if reports.removed_by and self.running:
            log.warning("member %x says this member was removed from the cluster; shutting down", reports.removed_by)
            self.running = False

    # ---- stopping ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        self.supervisor.stopping()
        for lsock in self.listeners:
            self.sel.unregister(lsock)
            lsock.close()
        if self.driver.hand_over_leadership():
            deadline = time.monotonic() + min(2.0, 10 * self.tick_s)
            while time.monotonic() < deadline and self.driver.raft.is_leader:
                self.run_turn(min(self.tick_s, 0.05))
        self._run_driver(time.monotonic())
        for conn in list(self.connections.conns.values()):
            self.connections.flush(conn)
            self.connections.close(conn)
        self.transport.close()
        self.addresses.close()
        self.sel.unregister(self.passwords.fileno())
        self.passwords.close()
        self.snapshotter.stop()
        self.storage.close()
        log.info("stopped")
