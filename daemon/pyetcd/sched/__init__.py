"""pyetcd-sched: cluster work scheduling on a v2 keyspace (pyetcd or etcd).

Roles (one command, `pyetcd-sched`, see cli.py):
  submit/rm/ls  write and read desired work under <prefix>/desired/ (default prefix /sched);
  agent         one per machine: holds <prefix>/machines/<id> (TTL) and runs the units assigned to it as
                child processes or transient systemd units, reporting <prefix>/status/<unit> (TTL);
  scheduler     any number; one leads through <prefix>/leader (TTL, CAS): assigns each desired unit to
                one live machine in <prefix>/assign/<unit>, and moves the units of machines that died.
The keyspace and its records: layout.py. Watches: mirror.py (resume from the last seen index; a full
re-read after error 401). Placement rules: placement.py.

Safety: no unit ever runs on two machines at once
-------------------------------------------------
Notation: T is the machine TTL; an agent fences at f*T (default f = 0.5) and its kills take at most
g (--kill-grace, default T/5); the configuration must keep f*T + g well below T (checked).

1. A machine id names one agent *incarnation*. Its key is created once (prevExist=false, fresh random id)
   and only ever refreshed (CAS on its value, refresh=true), never re-created: once the key is gone it is
   gone for good. "Machine M is dead" is therefore a stable fact; whoever sees it in any consistent state
   of the store can rely on it for ever after.
2. The scheduler takes a unit away from machine M (moves or drops its assignment) only after it saw M's
   key gone in a consistent state: its mirror of the whole prefix, built from one full read and then
   events applied in index order, so an assignment to M and the absence of M's key are seen together.
   The write is a CAS on the assignment's modifiedIndex, so it replaces exactly the assignment it saw.
   The scheduler never takes a unit from a live machine: it only marks it "stop", and the agent that
   holds it stops the unit first and then deletes the assignment itself (CAS on prevIndex).
3. The agent on M runs a unit only while (a) its mirror of <prefix>/assign shows the unit assigned to M,
   not marked stop, and (b) its lease is safe: less than f*T has passed since it *sent* the last refresh
   (or create) of M's key that succeeded. When (b) fails it fences: SIGTERM to every unit, SIGKILL after g,
   and waits for them; it starts nothing until a refresh succeeds again. Every request it makes has a
   timeout capped at the time left before the fence deadline, so nothing delays the fence. If the agent
   itself is killed, its units get the death signal from the kernel at once (runner.py), or systemd
   stops them (BindsTo=, systemd.py).
4. The store deletes M's key no earlier than T after the send time of the last refresh that took effect
   (lease.py: the expiry is stamped as receipt time + T, and removed only by a SYNC proposed later).
   The agent's last *seen* success was sent no later than that, so all of M's units are dead by
   last_ok + f*T + g < last_ok + T <= the moment M's key can vanish.
5. So the chain of writes to <prefix>/assign/U, each conditioned on the one before, alternates holders
   only across points where the previous holder's copy of U was already dead: either it stopped U and
   handed the assignment back (2), or its key vanished, after which (4) nothing of it runs. The next
   holder starts U only after seeing the assignment that names it, which comes later still.
6. An agent that fenced because the store was unreachable, and then refreshes successfully, resumes its
   units: the successful refresh proves the key never vanished, so by (1) and (2) nothing was moved away
   (a "stop" mark it has not seen yet is only obeyed late; nobody else can hold the unit meanwhile).
   Mirrors never go back in time (a full read older than the mirror is refused), so an agent that saw a
   "stop" never sees the older "run" again.
Assumptions: clocks of the agents and the members run at the same rate and the members' wall clocks are
not stepped forward (the TTL is wall time on the members, monotonic time on the agent); an agent is not
frozen (SIGSTOP, a paused VM) for longer than the margin (1-f)*T - g: a frozen agent cannot fence; with
the process runner, a unit's processes stay in its process group and its main process does not ignore
the death signal (the default, SIGKILL, cannot be ignored); nobody deletes a machine key by hand (only
expiry, or the agent itself after stopping its units, may remove it).

Liveness: a dead machine's units move after its TTL expires (the leader member's next SYNC after T), plus
one watch round trip for the scheduler and one for the new agent; a dead leading scheduler is replaced
after the lock's TTL. Two schedulers acting at once cannot place a unit twice (creates with
prevExist=false, CAS on prevIndex); the lock only avoids wasted work.
The price of fencing: when the store cannot take writes for longer than f*T (a pyetcd leader election
takes about a second), agents stop their units and start them again once a refresh succeeds. With the
default T = 10 s that needs a long outage; with the tests' T = 3 s it happens at most leader kills.
"""
