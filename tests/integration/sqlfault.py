"""A fault-injecting relay between a module and the test's real MariaDB.

The modules reach MariaDB over a Unix socket (<Role>DBSocket). Pointed at
this relay instead, a module's connections pass through unchanged until a
test arms a fault; then the connection that sends the matching statement
is cut at an exact point:

- before: the statement never reaches the server; the server sees the
  connection vanish in the middle of the transaction and rolls it back.
- after: the server runs the statement (a COMMIT takes effect) and the
  relay cuts the connection instead of passing the answer on, so the
  module cannot know the outcome.

That is "the database failed in the middle of a transaction", with a real
server on the far side: what the modules leave behind is checked in the
real database and on disk.

Only as much of the client/server protocol is read as the matching needs:
packet framing (3-byte length, sequence id), the command byte of a
command packet (the client's packets with sequence id 0), the SQL of
COM_QUERY and COM_STMT_PREPARE, and the statement id the server answers a
prepare with, so that a COM_STMT_EXECUTE is matched by its SQL.
mysql_commit() sends COM_QUERY "COMMIT"; prepared statements (CALL ...,
INSERT ...) arrive as COM_STMT_EXECUTE.
"""

import os
import re
import select
import socket
import threading
import time

COM_QUERY = 0x03
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_CLOSE = 0x19
# mariadb_stmt_execute_direct: "the statement prepared just before".
LAST_PREPARED = 0xFFFFFFFF
# After an "after" fault fires: how long the server must stay silent
# before its whole answer is taken to have arrived.
ANSWER_QUIET = 0.3


class Fault:
    """One armed fault: the statements whose SQL matches pattern (a regular
    expression searched case-insensitively), cut before or after the
    server runs them, the next `times` matches. With following, only a
    statement on a connection that ran one matching `following` since its
    last match (e.g. the COMMIT of the transaction that inserted a row,
    not another thread's)."""

    def __init__(self, pattern, when, times, following=None):
        if when not in ("before", "after"):
            raise ValueError("when is 'before' or 'after', not %r" % when)
        self.regex = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        self.following = (re.compile(following, re.IGNORECASE | re.DOTALL)
                          if following is not None else None)
        self.when = when
        self.left = times
        self.fired = 0
        self.statements = []


class _Packets:
    """Splits one direction's byte stream into protocol packets."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, data):
        self.buffer += data
        packets = []
        while len(self.buffer) >= 4:
            length = int.from_bytes(self.buffer[:3], "little")
            if len(self.buffer) < 4 + length:
                break
            packets.append(bytes(self.buffer[:4 + length]))
            del self.buffer[:4 + length]
        return packets


class _Cut(Exception):
    """The armed fault fired: end this connection now."""


class SqlFaultRelay:
    """Listens on `<directory>/db.sock` and relays every connection to the
    MariaDB socket `upstream`. Use as a context manager, or call stop()."""

    def __init__(self, upstream, directory):
        self.upstream = upstream
        self.path = os.path.join(directory, "db.sock")
        self._lock = threading.Lock()
        self._faults = []
        self._sockets = set()
        self._threads = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        # httpd's children may run as another user than the tests.
        os.chmod(directory, 0o755)
        os.chmod(self.path, 0o666)
        self._listener.listen(64)
        self._running = True
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def arm(self, pattern, when="before", times=1, following=None):
        """Cut the connection at the next `times` statements matching
        pattern (see Fault); returns the Fault, whose `fired` counts the
        cuts."""
        fault = Fault(pattern, when, times, following)
        with self._lock:
            self._faults.append(fault)
        return fault

    def disarm(self):
        with self._lock:
            self._faults.clear()

    def wait_fired(self, fault, count=1, timeout=10):
        deadline = time.monotonic() + timeout
        while fault.fired < count:
            if time.monotonic() > deadline:
                raise AssertionError("fault %r fired %d times, expected %d"
                                     % (fault.regex.pattern, fault.fired, count))
            time.sleep(0.02)

    def stop(self):
        self._running = False
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            _close(s)
        for t in [self._acceptor] + self._threads:
            t.join(timeout=5)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    # --- relaying ---------------------------------------------------------

    def _accept(self):
        while self._running:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(client,), daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def _take_fault(self, sql, primed):
        """The fault sql sets off on a connection; primed: the faults whose
        `following` statement that connection ran (updated here)."""
        with self._lock:
            for fault in self._faults:
                if fault.left <= 0:
                    continue
                if fault.following is not None and fault not in primed:
                    if fault.following.search(sql):
                        primed.add(fault)
                    continue
                if fault.regex.search(sql):
                    primed.discard(fault)
                    fault.left -= 1
                    fault.statements.append(sql)
                    return fault
        return None

    def _relay(self, client):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            self._sockets.update((client, server))
        state = {"statements": {}, "preparing": None, "last_prepared": None,
                 "primed": set()}
        try:
            server.connect(self.upstream)
            from_client, from_server = _Packets(), _Packets()
            while self._running:
                readable, _, _ = select.select([client, server], [], [], 0.5)
                if client in readable:
                    data = client.recv(65536)
                    if not data:
                        return
                    self._forward_commands(from_client.feed(data), server, state)
                if server in readable:
                    data = server.recv(65536)
                    if not data:
                        return
                    for packet in from_server.feed(data):
                        self._note_answer(packet, state)
                    client.sendall(data)
        except (_Cut, OSError):
            return
        finally:
            with self._lock:
                self._sockets.discard(client)
                self._sockets.discard(server)
            _close(client)
            _close(server)

    def _forward_commands(self, packets, server, state):
        for packet in packets:
            sql = self._command_sql(packet, state)
            fault = self._take_fault(sql, state["primed"]) if sql is not None else None
            if fault is not None and fault.when == "before":
                fault.fired += 1
                raise _Cut()
            server.sendall(packet)
            if fault is not None:
                _swallow_answer(server)
                fault.fired += 1
                raise _Cut()

    @staticmethod
    def _command_sql(packet, state):
        """The SQL a command packet runs, or None (not a statement)."""
        if packet[3] != 0 or len(packet) < 5:
            return None
        command = packet[4]
        if command == COM_QUERY:
            return packet[5:].decode("utf-8", "replace")
        if command == COM_STMT_PREPARE:
            state["preparing"] = packet[5:].decode("utf-8", "replace")
            return None
        if command in (COM_STMT_EXECUTE, COM_STMT_CLOSE) and len(packet) >= 9:
            stmt_id = int.from_bytes(packet[5:9], "little")
            if command == COM_STMT_CLOSE:
                state["statements"].pop(stmt_id, None)
                return None
            if stmt_id == LAST_PREPARED:
                return state["last_prepared"]
            return state["statements"].get(stmt_id)
        return None

    @staticmethod
    def _note_answer(packet, state):
        # The first packet answering a COM_STMT_PREPARE: 0x00, statement id.
        if state["preparing"] is None or packet[3] != 1:
            return
        if len(packet) >= 9 and packet[4] == 0:
            stmt_id = int.from_bytes(packet[5:9], "little")
            state["statements"][stmt_id] = state["preparing"]
            state["last_prepared"] = state["preparing"]
        state["preparing"] = None


def _swallow_answer(server):
    """Reads the server's answer to the statement just sent (so that it
    ran to the end, a CALL with all its result sets) and drops it."""
    got_any = False
    while True:
        readable, _, _ = select.select([server], [], [], ANSWER_QUIET if got_any else 30)
        if not readable:
            return
        data = server.recv(65536)
        if not data:
            return
        got_any = True


def _close(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
