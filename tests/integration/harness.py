"""Integration-test harness: a per-run CA, a private MariaDB and a private
httpd with mod_ssl, all in one temp dir, torn down afterwards.

The pytest glue (fixtures, keeping the temp dir on failure) is in
conftest.py; this module has no pytest dependency so that benchmarks and
ad-hoc scripts can use it too. See README.md for the API in short.
"""

import atexit
import datetime
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

APACHE_BIN = os.environ.get("SM_APACHE2", "/usr/sbin/apache2")
APACHE_MODULE_DIR = os.environ.get("SM_APACHE_MODULE_DIR",
                                   "/usr/lib/apache2/modules")
MARIADB_BIN_DIR = os.environ.get("SM_MARIADB_BIN_DIR", "/usr/bin")
MARIADBD_BIN = os.environ.get("SM_MARIADBD", "/usr/sbin/mariadbd")

# Client certificates every test can use; "foreign" is added on top, signed
# by a CA the servers do not trust.
CLIENT_ROLES = ("owner", "retailer1", "retailer2", "mediastore", "admin")
FOREIGN_ROLE = "foreign"
DB_ROLES = ("keyserver", "mediastore", "retail")
# The identity the harness itself uses to check that httpd answers.
PROBE_ROLE = "sm-harness-probe"


class HarnessError(Exception):
    """A server could not be set up, started or stopped."""


def _tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no %s)" % path


def _chmod_tree_readable(path):
    """Let www-data (httpd's children) reach and read everything under path."""
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o755)
        for name in files:
            full = os.path.join(root, name)
            os.chmod(full, os.stat(full).st_mode | 0o444)


# --- processes ---------------------------------------------------------------
# PID 1 on these machines reaps orphans late, so "gone" means /proc/PID has
# disappeared or the process is a zombie; kill -0 would still succeed.

def _proc_stat_fields(pid):
    """Fields of /proc/PID/stat after the command name, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may contain spaces and parentheses: skip to the last ')'.
    return data[data.rindex(")") + 2:].split()


def process_running(pid):
    """True while pid exists and is neither a zombie nor dead."""
    fields = _proc_stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X", "x")


def _process_start_time(pid):
    fields = _proc_stat_fields(pid)
    # starttime is field 22 of stat; fields[] starts at field 3 (state).
    return None if fields is None else int(fields[19])


def child_pids(pid):
    """PIDs of the running direct children of pid."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _proc_stat_fields(int(entry))
        if fields and int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            children.append(int(entry))
    return children


def wait_until_gone(pids, timeout):
    """Wait until none of pids is running; return those still running."""
    deadline = time.monotonic() + timeout
    remaining = [p for p in pids if process_running(p)]
    while remaining and time.monotonic() < deadline:
        time.sleep(0.02)
        remaining = [p for p in remaining if process_running(p)]
    return remaining


class _ProcessRegistry:
    """Every long-running process the harness started, so that an abnormal
    exit (atexit, SIGTERM) still stops them. Only these PIDs are ever
    signalled, and only while their start time still matches (no PID reuse)."""

    def __init__(self):
        self._started = {}  # pid -> (start time, label)

    def add(self, pid, label):
        self._started[pid] = (_process_start_time(pid), label)

    def discard(self, pid):
        self._started.pop(pid, None)

    def _still_ours(self, pid):
        start, _ = self._started[pid]
        return process_running(pid) and _process_start_time(pid) == start

    def pids(self):
        return list(self._started)

    def kill_all(self, timeout=5.0):
        victims = [p for p in list(self._started) if self._still_ours(p)]
        # Children die with their master; note them in case it must be killed.
        family = victims + [c for p in victims for c in child_pids(p)]
        for pid in victims:
            _signal(pid, signal.SIGTERM)
        for pid in wait_until_gone(family, timeout):
            _signal(pid, signal.SIGKILL)
        wait_until_gone(family, timeout)
        self._started.clear()


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


REGISTRY = _ProcessRegistry()
atexit.register(REGISTRY.kill_all)


def install_signal_handlers():
    """Stop every started server when the test run itself is terminated
    (e.g. by a CI timeout), then die of the same signal."""

    def on_signal(signum, _frame):
        REGISTRY.kill_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)


_PORTS_GIVEN = set()


def free_port():
    """A currently free TCP port on 127.0.0.1 from the kernel's ephemeral
    (high) range, never one this process was given before (the kernel can
    hand out the same free port twice in a row, and one httpd asked to
    listen twice on it refuses its config). Callers retry if someone else
    grabs it first."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def _running_as_root():
    return os.geteuid() == 0


def _current_user():
    return pwd.getpwuid(os.geteuid()).pw_name


# --- workspace ---------------------------------------------------------------

class Workspace:
    """The run's temp dir. Kept (and its path printed) when something failed,
    removed otherwise. Never inside the source tree: distcheck makes it
    read-only. Unix socket paths are limited to 107 bytes, so the default is
    the system temp dir rather than a deep build dir."""

    def __init__(self, base=None):
        base = base or os.environ.get("SM_INTEGRATION_TMPDIR") or None
        self.path = tempfile.mkdtemp(prefix="sm-integ-", dir=base)
        # mkdtemp gives 0700; httpd children (www-data) must traverse it.
        os.chmod(self.path, 0o755)
        self._counter = 0

    def new_dir(self, name):
        """A fresh, www-data-reachable subdirectory named after name."""
        self._counter += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
        path = os.path.join(self.path, "%03d-%s" % (self._counter, safe))
        os.makedirs(path, mode=0o755)
        os.chmod(path, 0o755)
        return path

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


# --- PKI ---------------------------------------------------------------------

@dataclass(frozen=True)
class Credential:
    """A certificate with its private key, as files.

    subject_dn is RFC 4514 order and escaping, which is what mod_ssl puts in
    SSL_CLIENT_S_DN (unless SSLOptions +LegacyDNStringFormat)."""
    name: str
    cert: str      # PEM certificate
    key: str       # PEM private key, 0600
    pem: str       # certificate followed by key, 0600 (curl --cert, libcurl)
    subject_dn: str
    issuer_dn: str

    @property
    def requests_cert(self):
        """The (cert, key) pair python-requests takes as cert=."""
        return (self.cert, self.key)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class _Issuer:
    """A CA key and certificate able to sign leaf certificates."""

    def __init__(self, common_name, directory, file_stem):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "secmedia tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ])
        now = datetime.datetime.now(datetime.timezone.utc)
        public = self.key.public_key()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name).issuer_name(self.name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                           critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public),
                           critical=False)
            .sign(self.key, hashes.SHA256()))
        self.cert_path = os.path.join(directory, file_stem + ".crt")
        self.key_path = os.path.join(directory, file_stem + ".key")
        with open(self.cert_path, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        _write_private(self.key_path, _pem_key(self.key))

    def issue(self, directory, file_stem, common_name, server_names=()):
        """A leaf certificate: a server one if server_names, else a client one."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "secmedia tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ])
        now = datetime.datetime.now(datetime.timezone.utc)
        usage = (ExtendedKeyUsageOID.SERVER_AUTH if server_names
                 else ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                           critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False))
        if server_names:
            alt_names = []
            for name in server_names:
                try:
                    alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    alt_names.append(x509.DNSName(name))
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = _pem_key(key)
        paths = [os.path.join(directory, file_stem + ext)
                 for ext in (".crt", ".key", ".pem")]
        with open(paths[0], "wb") as f:
            f.write(cert_pem)
        _write_private(paths[1], key_pem)
        _write_private(paths[2], cert_pem + key_pem)
        return Credential(name=common_name, cert=paths[0], key=paths[1],
                          pem=paths[2], subject_dn=subject.rfc4514_string(),
                          issuer_dn=self.name.rfc4514_string())


class TestPKI:
    """The run's CA with a server certificate for localhost/127.0.0.1 and a
    client certificate per role, plus a "foreign" client certificate from a
    second CA that no server trusts. Generated per run; never committed."""

    __test__ = False  # not a pytest test class despite the name

    SERVER_NAMES = ("localhost", "127.0.0.1")

    def __init__(self, directory, roles=CLIENT_ROLES):
        os.makedirs(directory, mode=0o755, exist_ok=True)
        self.directory = directory
        self._ca = _Issuer("secmedia test CA", directory, "ca")
        self._foreign_ca = _Issuer("foreign test CA", directory, "foreign-ca")
        self.ca_cert = self._ca.cert_path
        self.ca_dn = self._ca.name.rfc4514_string()
        self.foreign_ca_cert = self._foreign_ca.cert_path
        self.server = self._ca.issue(directory, "server", "localhost",
                                     server_names=self.SERVER_NAMES)
        self.clients = {role: self._ca.issue(directory, "client-" + role, role)
                        for role in roles}
        self.clients[FOREIGN_ROLE] = self._foreign_ca.issue(
            directory, "client-" + FOREIGN_ROLE, FOREIGN_ROLE)

    def client(self, role):
        try:
            return self.clients[role]
        except KeyError:
            raise KeyError("no client certificate for role %r (have: %s)"
                           % (role, ", ".join(sorted(self.clients)))) from None

    def issue_client(self, role):
        """An extra client certificate from the run CA (e.g. a third retailer)."""
        if role not in self.clients:
            self.clients[role] = self._ca.issue(self.directory,
                                                "client-" + role, role)
        return self.clients[role]


# --- MariaDB -------------------------------------------------------------------

class MariaDBError(HarnessError):
    pass


@dataclass(frozen=True)
class RoleDatabase:
    """A database and the account a module connects with (socket only)."""
    role: str
    name: str
    user: str
    password: str
    socket: str


class MariaDB:
    """A private mariadbd on a Unix socket, no TCP. Root connects without a
    password (--auth-root-authentication-method=normal on a fresh datadir)."""

    def __init__(self, directory, max_connections=1000, extra_args=()):
        self.directory = directory
        self.datadir = os.path.join(directory, "data")
        # A separate dir for the socket: it must be reachable by www-data
        # while the datadir stays private.
        self.rundir = os.path.join(directory, "run")
        self.socket = os.path.join(self.rundir, "mysqld.sock")
        self.pidfile = os.path.join(self.rundir, "mysqld.pid")
        self.error_log = os.path.join(directory, "mariadb.err")
        # Its own temp dir: the servers of parallel runs share nothing in /tmp.
        self.tmpdir = os.path.join(directory, "tmp")
        self.max_connections = max_connections
        self.extra_args = list(extra_args)
        self._process = None
        if len(self.socket.encode()) > 107:
            raise MariaDBError("socket path too long for AF_UNIX (%d bytes): %s;"
                               " set SM_INTEGRATION_TMPDIR to a shorter dir"
                               % (len(self.socket.encode()), self.socket))
        os.makedirs(self.rundir, exist_ok=True)
        os.makedirs(self.tmpdir, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o755)
        os.chmod(self.rundir, 0o755)
        self._installed = False

    def _tool(self, name):
        return os.path.join(MARIADB_BIN_DIR, name)

    def install(self):
        result = subprocess.run(
            [self._tool("mariadb-install-db"), "--no-defaults",
             "--datadir=" + self.datadir, "--tmpdir=" + self.tmpdir,
             "--user=" + _current_user(),
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=120)
        if result.returncode != 0:
            raise MariaDBError("mariadb-install-db failed:\n" + result.stdout)
        self._installed = True

    @property
    def pid(self):
        return self._process.pid if self._process else None

    @property
    def running(self):
        return self._process is not None and process_running(self._process.pid)

    def start(self, timeout=30):
        if self.running:
            return
        if not self._installed:
            self.install()
        # --no-defaults must come first; the rest keeps the server private.
        argv = [MARIADBD_BIN, "--no-defaults", "--datadir=" + self.datadir,
                "--tmpdir=" + self.tmpdir,
                "--socket=" + self.socket, "--pid-file=" + self.pidfile,
                "--skip-networking", "--user=" + _current_user(),
                "--skip-log-bin", "--log-error=" + self.error_log,
                "--max-connections=%d" % self.max_connections,
                # Tests do not need durability; fsync per commit only slows them.
                "--innodb-flush-log-at-trx-commit=2"] + self.extra_args
        with open(os.devnull, "rb") as devnull:
            self._process = subprocess.Popen(
                argv, stdin=devnull, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
        REGISTRY.add(self._process.pid, "mariadbd")
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self._process.poll() is not None:
                REGISTRY.discard(self._process.pid)
                self._process = None
                raise MariaDBError("mariadbd exited during startup:\n"
                                   + _tail(self.error_log))
            if time.monotonic() > deadline:
                self.stop()
                raise MariaDBError("mariadbd not ready after %ss:\n%s"
                                   % (timeout, _tail(self.error_log)))
            time.sleep(0.05)
        # The socket is created with the server's umask; clients (www-data)
        # need to connect.
        os.chmod(self.socket, 0o777)

    def ping(self):
        result = subprocess.run(
            [self._tool("mariadb-admin"), "--no-defaults",
             "--socket=" + self.socket, "--user=root", "--connect-timeout=2",
             "ping"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return result.returncode == 0

    def stop(self, timeout=30):
        """SIGTERM (a clean, fast shutdown) and wait until it is gone."""
        if self._process is None:
            return
        pid = self._process.pid
        if process_running(pid):
            _signal(pid, signal.SIGTERM)
            if wait_until_gone([pid], timeout):
                _signal(pid, signal.SIGKILL)
                wait_until_gone([pid], 5)
        self._process.wait(timeout=5)  # our child: reap it ourselves
        REGISTRY.discard(pid)
        self._process = None

    def restart(self, timeout=30):
        self.stop(timeout)
        self.start(timeout)

    # -- SQL ------------------------------------------------------------------

    def _client(self, database=None, user="root", password=None):
        argv = [self._tool("mariadb"), "--no-defaults",
                "--socket=" + self.socket, "--user=" + user,
                "--batch", "--skip-column-names", "--default-character-set=utf8mb4"]
        if password is not None:
            argv.append("--password=" + password)
        if database:
            argv.append("--database=" + database)
        return argv

    def open_session(self, database=None):
        """A root client session kept open (stdin/stdout pipes, unbuffered),
        for tests that hold locks while requests run. Write statements to
        .stdin (flush), read result lines from .stdout; close stdin and
        wait() to end it."""
        proc = subprocess.Popen(self._client(database) + ["--unbuffered"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        REGISTRY.add(proc.pid, "mariadb client session")
        return proc

    def _run_client(self, argv, sql, what):
        result = subprocess.run(argv, input=sql, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, timeout=120)
        if result.returncode != 0:
            raise MariaDBError("%s failed: %s" % (what, result.stderr.strip()))
        return result.stdout

    def query(self, sql, database=None, user="root", password=None):
        """Run SQL (one or more statements) and return the result rows of the
        last statement as tuples of strings; SQL NULL comes back as None."""
        out = self._run_client(self._client(database, user, password), sql,
                               "query %r" % sql[:200])
        return [tuple(_unescape_batch_field(f) for f in line.split("\t"))
                for line in out.splitlines()]

    def execute(self, sql, database=None):
        self.query(sql, database)

    def apply_sql(self, database, paths):
        """Run each SQL file, in the order given, in database."""
        for path in paths:
            with open(path, encoding="utf-8") as f:
                self._run_client(self._client(database), f.read(),
                                 "applying %s to %s" % (path, database))

    def create_role_database(self, role, sql_files=(), name=None):
        """(Re)create database sm_<role> and user sm_<role>@localhost with a
        fresh random password and all rights on it, then apply sql_files."""
        name = name or "sm_" + role
        if not re.fullmatch(r"[A-Za-z0-9_]{1,32}", name):
            raise ValueError("unsafe database name %r" % name)
        password = secrets.token_urlsafe(18)
        self.execute(
            "DROP DATABASE IF EXISTS `{n}`;"
            "DROP USER IF EXISTS '{n}'@'localhost';"
            "CREATE DATABASE `{n}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"
            "CREATE USER '{n}'@'localhost' IDENTIFIED BY '{p}';"
            "GRANT ALL PRIVILEGES ON `{n}`.* TO '{n}'@'localhost';"
            .format(n=name, p=password))
        self.apply_sql(name, sql_files)
        return RoleDatabase(role=role, name=name, user=name, password=password,
                            socket=self.socket)

    def migrate(self, database, role, sql_dir):
        """Bring database to the newest schema of role with the project's
        own migration tool (sql/secmedia-db-migrate), as production does."""
        result = subprocess.run(
            [migrate_tool(), "--role", role, "--database", database,
             "--sql-dir", sql_dir, "--socket", self.socket, "--user", "root"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=120,
            env=dict(os.environ, SM_MARIADB_CLIENT=self._tool("mariadb")))
        if result.returncode != 0:
            raise MariaDBError("migrating %s (%s) failed:\n%s"
                               % (database, role, result.stdout))
        return result.stdout


def migrate_tool():
    """The built sql/secmedia-db-migrate of this build tree."""
    top = os.environ.get("SM_TOP_BUILDDIR")
    if not top:
        raise HarnessError("SM_TOP_BUILDDIR is not set (run via make check or run.sh)")
    path = os.path.join(top, "sql", "secmedia-db-migrate")
    if not os.access(path, os.X_OK):
        raise HarnessError("%s missing: build it first (make -C %s/sql)" % (path, top))
    return path


_BATCH_ESCAPES = {"\\t": "\t", "\\n": "\n", "\\0": "\0", "\\\\": "\\"}


def _unescape_batch_field(field):
    # --batch prints NULL as the bare word and escapes tab, newline, NUL, \.
    if field == "NULL":
        return None
    return re.sub(r"\\[tn0\\]", lambda m: _BATCH_ESCAPES[m.group(0)], field)


# --- error log policy ----------------------------------------------------------

# Levels that fail a test unless the line is expected or allowed.
CHECKED_LEVELS = ("emerg", "alert", "crit", "error", "warn")
_LOG_LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info",
               "debug") + tuple("trace%d" % i for i in range(1, 9))
MESSAGE_ID = re.compile(r"^(AH|SM)\d{5}$")
# Default ErrorLogFormat: "[time] [module:level] [pid N:tid M] ... AHnnnnn: msg"
_LOG_LINE = re.compile(r"^\[[^\]]*\] \[(?:(?P<module>[^:\]]*):)?(?P<level>[a-z0-9]+)\] (?P<rest>.*)$")
_LOG_MESSAGE_ID = re.compile(r"\b((?:AH|SM)\d{5}):")


@dataclass(frozen=True)
class LogEntry:
    line: str
    level: str         # "stderr" for lines not in the error log format
    module: str
    message_id: str    # "" when the line carries none


def parse_error_log(text):
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LOG_LINE.match(line)
        if m is None:
            # Raw stderr of httpd or a module (sanitizer reports, crashes):
            # always worth a look.
            entries.append(LogEntry(line, "stderr", "", ""))
            continue
        found = _LOG_MESSAGE_ID.search(m.group("rest"))
        entries.append(LogEntry(line, m.group("level"), m.group("module") or "",
                                found.group(1) if found else ""))
    return entries


class ErrorLogPolicy:
    """What a test lets the error log contain at error/warn level (and above).

    expect(ids): these ids must appear (at least once) and may repeat.
    allow(ids or regexes): these may appear.
    Anything else at a checked level, and any raw stderr line, is a failure.
    httpd's own harmless startup lines are avoided by the generated config
    (ServerName, a certificate matching it), not listed here."""

    def __init__(self):
        self.expected = set()
        self.allowed_ids = set()
        self.allowed_patterns = []

    @staticmethod
    def _check_id(message_id):
        if not MESSAGE_ID.match(message_id):
            raise ValueError("not a message id (AHnnnnn or SMnnnnn): %r"
                             % message_id)
        return message_id

    def expect(self, *ids):
        self.expected.update(self._check_id(i) for i in ids)

    def allow(self, *ids_or_patterns):
        for item in ids_or_patterns:
            if isinstance(item, str) and MESSAGE_ID.match(item):
                self.allowed_ids.add(item)
            else:
                self.allowed_patterns.append(re.compile(item))

    def _is_allowed(self, entry):
        if entry.message_id and entry.message_id in (self.expected
                                                     | self.allowed_ids):
            return True
        return any(p.search(entry.line) for p in self.allowed_patterns)

    def violations(self, text):
        """Human-readable problems with the log text; empty when it is clean."""
        entries = parse_error_log(text)
        problems = ["unexpected %s line: %s" % (e.level, e.line)
                    for e in entries
                    if (e.level in CHECKED_LEVELS or e.level == "stderr")
                    and not self._is_allowed(e)]
        seen = {e.message_id for e in entries}
        problems += ["expected log id %s never appeared" % i
                     for i in sorted(self.expected - seen)]
        return problems


# --- httpd ---------------------------------------------------------------------

class HttpdError(HarnessError):
    pass


# mod_headers is for the whoami location below; tests load anything else.
# mpm_event's process model for the tests: Debian's stock sizes with one
# child at start (children are added as threads get busy).
DEFAULT_MPM = ("StartServers 1", "MinSpareThreads 25", "MaxSpareThreads 75",
               "ThreadsPerChild 25", "MaxRequestWorkers 150")

# The process model docs/CONFIGURATION.md §1.3 recommends for servers whose
# clients keep up to `threads` requests in flight: one child with a thread for
# each (the database pool and the ledger sealer are per child, and a pool's
# waiters are served in arrival order only within a child); ServerLimit 2
# leaves a scoreboard slot for the old child during a graceful restart.
# MinSpareThreads must stay under MaxRequestWorkers (with the default 75,
# mpm_event logs AH10159 at every start): with an eighth of the threads,
# that error says the child is nearly full.
class SyscallTrace:
    """strace -f on running processes (all their threads) for one system
    call, e.g. the evidence that httpd sends a file with sendfile(2). A
    context manager: attached on entry, detached (strace ended by its PID)
    on exit; then returned() lists what the traced calls returned."""

    def __init__(self, pids, syscall, directory, timeout=10):
        self.syscall = syscall
        self.output = os.path.join(directory, "strace-%s.txt" % syscall)
        argv = ["strace", "-f", "-qq", "-e", "trace=" + syscall, "-e", "signal=none",
                "-o", self.output]
        for pid in pids:
            argv += ["-p", str(pid)]
        self._pids = list(pids)
        self._timeout = timeout
        self._argv = argv
        self._process = None

    def __enter__(self):
        # -qq hides the "attached" lines; attachment is seen in /proc
        # instead: every thread of every process has a tracer.
        self._process = subprocess.Popen(self._argv, stderr=subprocess.PIPE, text=True)
        REGISTRY.add(self._process.pid, "strace")
        deadline = time.monotonic() + self._timeout
        while not self._all_traced():
            if self._process.poll() is not None:
                raise RuntimeError("strace ended: %s" % self._process.stderr.read())
            if time.monotonic() > deadline:
                self._stop()
                raise RuntimeError("strace did not attach to %s in %ss"
                                   % (self._pids, self._timeout))
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self._stop()

    def _all_traced(self):
        for pid in self._pids:
            try:
                tids = os.listdir("/proc/%d/task" % pid)
            except FileNotFoundError:
                continue
            for tid in tids:
                try:
                    with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                        tracer = [line for line in f if line.startswith("TracerPid:")]
                except FileNotFoundError:
                    continue
                if tracer and tracer[0].split()[1] == "0":
                    return False
        return True

    def _stop(self):
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()   # strace detaches and exits
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        REGISTRY.discard(self._process.pid)
        self._process.stderr.close()

    def returned(self):
        """The values the traced calls returned, in order (-1: failed)."""
        values = []
        pattern = re.compile(r"\b%s\(|<\.\.\. %s resumed>" % (self.syscall, self.syscall))
        with open(self.output) as f:
            for line in f:
                if "<unfinished ...>" in line or not pattern.search(line):
                    continue
                m = re.search(r"\)\s+=\s+(-?\d+)", line)
                if m:
                    values.append(int(m.group(1)))
        return values


def single_child_mpm(threads):
    return ("StartServers 1", "ServerLimit 2", "ThreadLimit %d" % threads,
            "ThreadsPerChild %d" % threads, "MaxRequestWorkers %d" % threads,
            "MinSpareThreads %d" % max(1, threads // 8), "MaxSpareThreads %d" % threads)


_BASE_MODULES = ("mpm_event", "ssl", "socache_shmcb", "authz_core", "mime",
                 "headers")
_WHOAMI_PATH = "/sm-harness/whoami"


def module_path(name):
    """Path of a project module built in this build tree, e.g.
    module_path("mod_keyserver") -> $SM_TOP_BUILDDIR/mod_keyserver/.libs/mod_keyserver.so."""
    top = os.environ.get("SM_TOP_BUILDDIR")
    if not top:
        raise HarnessError("SM_TOP_BUILDDIR is not set (run via make check or run.sh)")
    for candidate in (os.path.join(top, name, ".libs", name + ".so"),
                      os.path.join(top, name, name + ".so")):
        if os.path.exists(candidate):
            return candidate
    raise HarnessError("%s.so not found under %s/%s: build it first (make -C %s)"
                       % (name, top, name, name))


class Httpd:
    """A private Apache httpd: an HTTPS vhost (mod_ssl, the run's CA) and a
    plain HTTP vhost on 127.0.0.1, both serving docroot.

    Configure before start(): load_module(), add_config(), add_vhost_config(),
    add_http_vhost_config(), require_client_cert(); change and restart() later.
    The error-log policy is in .log_policy; error_log_violations() applies it."""

    def __init__(self, directory, pki, log_level=None, single_process=False,
                 environment=None, mpm=DEFAULT_MPM):
        self.directory = directory
        self.mpm = tuple(mpm)
        self.pki = pki
        self.log_level = (log_level or os.environ.get("SM_HTTPD_LOGLEVEL")
                          or "info")
        self.single_process = single_process
        self.environment = dict(environment or {})
        # Sanitizer builds (configure --enable-sanitizers): httpd is not
        # instrumented, so the modules' ASan runtime is preloaded into it.
        # httpd exits through its pools, not free(): leak reports would be
        # noise, every other sanitizer report reaches the error log.
        preload = os.environ.get("SM_HTTPD_PRELOAD")
        if preload and "LD_PRELOAD" not in self.environment:
            self.environment["LD_PRELOAD"] = preload
            self.environment["ASAN_OPTIONS"] = "detect_leaks=0"
        self.conf_dir = os.path.join(directory, "conf")
        self.logs_dir = os.path.join(directory, "logs")
        self.run_dir = os.path.join(directory, "run")
        self.docroot = os.path.join(directory, "htdocs")
        for d in (self.conf_dir, self.logs_dir, self.run_dir, self.docroot):
            os.makedirs(d, mode=0o755, exist_ok=True)
        os.chmod(directory, 0o755)
        self.config_file = os.path.join(self.conf_dir, "httpd.conf")
        self.error_log = os.path.join(self.logs_dir, "error_log")
        self.access_log = os.path.join(self.logs_dir, "access_log")
        self.pidfile = os.path.join(self.run_dir, "httpd.pid")
        self.https_port = free_port()
        self.http_port = free_port()
        self.log_policy = ErrorLogPolicy()
        self._modules = []          # (symbol, path)
        self._server_config = []
        self._vhost_config = []
        self._http_vhost_config = []
        self._client_cert_locations = []
        # The HTTPS vhost's SSLVerifyClient: "optional" lets one vhost serve
        # both clients with certificates (servers, admins) and without
        # (consumers); "require" refuses handshakes without a certificate.
        self.ssl_verify_client = "optional"
        self._master_pid = None
        self._foreground = None     # Popen for single_process (-X)
        self._known_children = set()
        self.write_doc(_WHOAMI_PATH.lstrip("/"), b"whoami\n")

    # -- configuration ---------------------------------------------------------

    def load_module(self, name_or_path, symbol=None):
        """LoadModule by absolute path (a project module, never installed) or
        a stock module by short name ("rewrite" -> mod_rewrite.so). The symbol
        defaults to <name>_module from mod_<name>.so."""
        if os.sep in name_or_path:
            path = os.path.abspath(name_or_path)
            base = os.path.basename(path)
            stem = base[len("mod_"):] if base.startswith("mod_") else base
            stem = stem.split(".")[0]
        else:
            stem = name_or_path[len("mod_"):] if name_or_path.startswith("mod_") \
                else name_or_path
            path = os.path.join(APACHE_MODULE_DIR, "mod_%s.so" % stem)
        symbol = symbol or stem + "_module"
        # Loading a module twice is a warning (AH01574) that fails the test.
        if stem in _BASE_MODULES and os.path.dirname(path) == APACHE_MODULE_DIR:
            return
        if not any(s == symbol for s, _ in self._modules):
            self._modules.append((symbol, path))

    def add_config(self, text):
        """Server-level configuration text."""
        self._server_config.append(text)

    def add_vhost_config(self, text):
        """Configuration inside the HTTPS <VirtualHost>."""
        self._vhost_config.append(text)

    def add_http_vhost_config(self, text):
        """Configuration inside the plain HTTP <VirtualHost>."""
        self._http_vhost_config.append(text)

    def require_client_cert(self, location):
        """Make <Location location> of the HTTPS vhost answer 403 unless the
        client presented a valid certificate from the run CA.

        This is `Require ssl-verify-client` on top of the handshake's
        `SSLVerifyClient optional`, not a per-location `SSLVerifyClient
        require`: under TLS 1.3 the latter makes mod_ssl ask for
        post-handshake authentication, which fails (AH10158, 403) even when
        a valid certificate was sent in the handshake. For a vhost that only
        serves clients with certificates, set ssl_verify_client = "require"."""
        self._client_cert_locations.append(location)

    def write_doc(self, relpath, data):
        """Put a file under the docroot, readable by httpd's children."""
        path = os.path.join(self.docroot, relpath)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        _chmod_tree_readable(self.docroot)
        return path

    def _effective_log_level(self):
        # Graceful-restart detection reads mpm_event's notice lines; keep
        # them when the chosen level would hide them.
        first = self.log_level.split()[0]
        if first in _LOG_LEVELS and _LOG_LEVELS.index(first) < _LOG_LEVELS.index("notice"):
            return self.log_level + " mpm_event:notice"
        return self.log_level

    def config_text(self):
        """The complete generated httpd.conf."""
        pki = self.pki
        lines = [
            "# Generated by tests/integration/harness.py",
            'ServerRoot "%s"' % self.directory,
            'DefaultRuntimeDir "%s"' % self.run_dir,
            'PidFile "%s"' % self.pidfile,
            'ErrorLog "%s"' % self.error_log,
            "LogLevel %s" % self._effective_log_level(),
            'Mutex file:%s default' % self.run_dir,
            # A global name matching the certificate: no AH00558, no AH01909.
            "ServerName localhost",
        ]
        lines += ['LoadModule %s_module "%s/mod_%s.so"' % (m, APACHE_MODULE_DIR, m)
                  for m in _BASE_MODULES]
        lines += ['LoadModule %s "%s"' % (symbol, path)
                  for symbol, path in self._modules]
        if _running_as_root():
            # httpd refuses to serve as root.
            lines += ["User www-data", "Group www-data"]
        lines += [
            "Listen 127.0.0.1:%d https" % self.https_port,
            "Listen 127.0.0.1:%d http" % self.http_port,
            "TypesConfig /etc/mime.types",
            "EnableSendfile On",
        ] + list(self.mpm) + [
            "Timeout 30",
            'LogFormat "%h %{SSL_PROTOCOL}x \\"%{SSL_CLIENT_S_DN}x\\" %t \\"%r\\" %>s %b %D" sm',
            'CustomLog "%s" sm' % self.access_log,
            'SSLSessionCache "shmcb:%s/ssl_scache(512000)"' % self.run_dir,
            'DocumentRoot "%s"' % self.docroot,
            '<Directory "%s">' % self.docroot,
            "    Require all granted",
            "</Directory>",
            # Shows the client certificate as mod_ssl saw it, for tests of the
            # PKI and of per-location client-cert requirements.
            "<Location %s>" % _WHOAMI_PATH,
            '    Header always set X-SM-Client-Verify "%{SSL_CLIENT_VERIFY}s"',
            '    Header always set X-SM-Client-S-DN "%{SSL_CLIENT_S_DN}s"',
            '    Header always set X-SM-Client-I-DN "%{SSL_CLIENT_I_DN}s"',
            "</Location>",
        ]
        lines += self._server_config
        lines += [
            "<VirtualHost 127.0.0.1:%d>" % self.https_port,
            "    ServerName localhost",
            "    SSLEngine on",
            '    SSLCertificateFile "%s"' % pki.server.cert,
            '    SSLCertificateKeyFile "%s"' % pki.server.key,
            '    SSLCACertificateFile "%s"' % pki.ca_cert,
            "    SSLVerifyClient %s" % self.ssl_verify_client,
            "    SSLVerifyDepth 2",
        ]
        for location in self._client_cert_locations:
            lines += ["    <Location %s>" % location,
                      "        Require ssl-verify-client",
                      "    </Location>"]
        lines += ["    " + t for t in self._vhost_config]
        lines += ["</VirtualHost>",
                  "<VirtualHost 127.0.0.1:%d>" % self.http_port,
                  "    ServerName localhost"]
        lines += ["    " + t for t in self._http_vhost_config]
        lines += ["</VirtualHost>", ""]
        return "\n".join(lines)

    def _write_config(self, path):
        with open(path, "w") as f:
            f.write(self.config_text())
        os.chmod(path, 0o644)

    def _apache(self, *args, timeout=60):
        env = dict(os.environ)
        env.update(self.environment)
        return subprocess.run([APACHE_BIN, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env=env, timeout=timeout)

    def configtest(self):
        """Run httpd -t on the current settings; (ok, output). Uses a separate
        file so a running server's config (needed by -k stop) stays intact."""
        path = os.path.join(self.conf_dir, "configtest.conf")
        self._write_config(path)
        result = self._apache("-f", path, "-t")
        return result.returncode == 0, result.stdout

    # -- life cycle ------------------------------------------------------------

    @property
    def https_url(self):
        return "https://localhost:%d" % self.https_port

    @property
    def http_url(self):
        return "http://127.0.0.1:%d" % self.http_port

    @property
    def running(self):
        return self._master_pid is not None and process_running(self._master_pid)

    @property
    def master_pid(self):
        return self._master_pid

    def pids(self):
        """The master and its current children."""
        if not self.running:
            return []
        children = child_pids(self._master_pid)
        self._known_children.update(children)
        return [self._master_pid] + children

    def _read_log(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _count_resumed(self):
        return self._read_log().count("resuming normal operations")

    def start(self, timeout=15):
        if self.running:
            raise HttpdError("httpd already running (pid %d)" % self._master_pid)
        for attempt in range(3):
            if os.path.exists(self.pidfile):
                os.unlink(self.pidfile)
            self._write_config(self.config_file)
            log_offset = len(self._read_log())
            if self.single_process:
                env = dict(os.environ)
                env.update(self.environment)
                out = open(os.path.join(self.logs_dir, "stderr"), "ab")
                self._foreground = subprocess.Popen(
                    [APACHE_BIN, "-f", self.config_file, "-X"], stdout=out,
                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
                out.close()
                self._master_pid = self._foreground.pid
                REGISTRY.add(self._master_pid, "httpd -X")
            else:
                result = self._apache("-f", self.config_file, "-k", "start")
                if result.returncode != 0:
                    if "Address already in use" in result.stdout and attempt < 2:
                        # Lost the race for a free port: pick new ones.
                        self.https_port, self.http_port = free_port(), free_port()
                        continue
                    raise HttpdError("httpd -k start failed (exit %d):\n%s\n%s"
                                     % (result.returncode, result.stdout,
                                        _tail(self.error_log)))
            try:
                self._wait_started(timeout, log_offset)
                return
            except _PortTaken:
                self._stop_processes(timeout=10)
                self.https_port, self.http_port = free_port(), free_port()
        raise HttpdError("httpd could not bind free ports after 3 attempts")

    def _wait_started(self, timeout, log_offset):
        """Wait for the master's pidfile, then for an HTTPS answer. Errors
        after daemonizing (a module's post_config, a bind failure) only reach
        the error log, so watch it instead of waiting out the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self._master_pid is None and os.path.exists(self.pidfile):
                try:
                    with open(self.pidfile) as f:
                        self._master_pid = int(f.read().strip())
                    REGISTRY.add(self._master_pid, "httpd")
                except ValueError:
                    pass  # being written
            new_log = self._read_log()[log_offset:]
            if "Address already in use" in new_log:
                raise _PortTaken()
            master_died = self._master_pid is not None and not self.running
            startup_failed = (":emerg]" in new_log
                              or "Configuration Failed" in new_log)
            if master_died or (self._master_pid is None and startup_failed):
                self._forget_master()
                raise HttpdError("httpd failed to start:\n" + _tail(self.error_log))
            if self._master_pid is not None and self._answers_https():
                self.pids()
                return
            if time.monotonic() > deadline:
                self._stop_processes(timeout=10)
                raise HttpdError("httpd did not answer HTTPS within %ss:\n%s"
                                 % (timeout, _tail(self.error_log)))
            time.sleep(0.02)

    def _answers_https(self):
        try:
            with requests.Session() as session:
                session.trust_env = False   # see Client
                # A certificate of its own, in case the vhost requires one.
                session.cert = self.pki.issue_client(PROBE_ROLE).requests_cert
                session.get(self.https_url + _WHOAMI_PATH,
                            verify=self.pki.ca_cert, timeout=2)
            return True
        except requests.exceptions.RequestException:
            return False

    def restart(self, timeout=15):
        """Graceful restart with the current settings. The new config is
        checked first: a graceful restart onto a broken config would make
        the master exit."""
        if not self.running:
            raise HttpdError("httpd is not running")
        if self.single_process:
            self.stop(timeout)
            self.start(timeout)
            return
        ok, output = self.configtest()
        if not ok:
            raise HttpdError("new config does not pass configtest:\n" + output)
        generation = self._count_resumed()
        self._write_config(self.config_file)
        result = self._apache("-f", self.config_file, "-k", "graceful")
        if result.returncode != 0:
            raise HttpdError("httpd -k graceful failed:\n" + result.stdout)
        deadline = time.monotonic() + timeout
        while self._count_resumed() <= generation or not self._answers_https():
            if not self.running:
                self._forget_master()
                raise HttpdError("httpd exited during graceful restart:\n"
                                 + _tail(self.error_log))
            if time.monotonic() > deadline:
                raise HttpdError("graceful restart not done within %ss:\n%s"
                                 % (timeout, _tail(self.error_log)))
            time.sleep(0.02)
        self.pids()

    def stop(self, timeout=15):
        """-k stop on the same config; wait until master and children are
        gone. Falls back to signals on the known PIDs if that fails (e.g. a
        module refusing the config when -k stop parses it)."""
        if self._master_pid is None:
            return
        if self.running and not self.single_process:
            self.pids()
            self._apache("-f", self.config_file, "-k", "stop")
        self._stop_processes(timeout)

    def _stop_processes(self, timeout):
        if self._master_pid is None:
            return
        family = [self._master_pid] + sorted(self._known_children)
        if self.running:
            family += child_pids(self._master_pid)
            if self.single_process:
                _signal(self._master_pid, signal.SIGTERM)
        left = wait_until_gone(family, timeout)
        if left and self.running:
            _signal(self._master_pid, signal.SIGTERM)
            left = wait_until_gone(family, 5)
        for pid in left:
            _signal(pid, signal.SIGKILL)
        left = wait_until_gone(left, 5)
        self._forget_master()
        if left:
            raise HttpdError("httpd processes still running after stop: %s" % left)

    def _forget_master(self):
        if self._master_pid is not None:
            REGISTRY.discard(self._master_pid)
        if self._foreground is not None:
            try:
                self._foreground.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._foreground = None
        self._master_pid = None
        self._known_children.clear()

    # -- error log -------------------------------------------------------------

    def error_log_text(self):
        return self._read_log()

    def log_entries(self, message_id=None):
        """Parsed error-log lines, optionally only those with message_id."""
        entries = parse_error_log(self._read_log())
        if message_id:
            entries = [e for e in entries if e.message_id == message_id]
        return entries

    def error_log_violations(self):
        return self.log_policy.violations(self._read_log())


class _PortTaken(Exception):
    pass


# --- HTTP client ---------------------------------------------------------------

def _closed_before_answer(error):
    """True when a request failed because the server closed the connection
    without sending any answer (http.client.RemoteDisconnected)."""
    import http.client
    seen = set()
    cause = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, http.client.RemoteDisconnected):
            return True
        nested = [a for a in getattr(cause, "args", ()) if isinstance(a, BaseException)]
        cause = cause.__cause__ or cause.__context__ or (nested[0] if nested else None)
    return False


def _replayable(data):
    return data is None or isinstance(data, (bytes, str, dict, list, tuple))


class Client:
    """A keep-alive HTTP(S) client for one server and one identity.

    HTTPS is verified against the run CA (never verify=False); cert is the
    Credential presented as client certificate, or None."""

    def __init__(self, base_url, ca_cert=None, credential=None, timeout=10):
        self.base_url = base_url.rstrip("/")
        self.credential = credential
        self.timeout = timeout
        self.session = requests.Session()
        # Ignore proxy and CA-bundle environment variables: they would route
        # loopback requests elsewhere or override the run CA.
        self.session.trust_env = False
        if base_url.startswith("https:"):
            self.session.verify = ca_cert
        if credential is not None:
            self.session.cert = credential.requests_cert

    def url(self, path):
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, self.url(path), **kwargs)
        except requests.exceptions.ConnectionError as e:
            # A kept-alive connection the server closed while idle (its
            # KeepAliveTimeout, or the event MPM closing idle connections
            # of a child that is over its connection limit, e.g. while a
            # bench's 32 connections arrive) fails the next request sent on
            # it without any answer. Like curl and browsers, send it again
            # once on a new connection. Not for bodies that cannot be sent
            # twice (files, generators); a server that crashed on the
            # request shows in the error log, which fails the test anyway.
            if not _closed_before_answer(e) or not _replayable(kwargs.get("data")):
                raise
            return self.session.request(method, self.url(path), **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def head(self, path, **kwargs):
        return self.request("HEAD", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def json(self, method, path, body=None, expect=200, **kwargs):
        """Send body as JSON (if given), check the status is expect and the
        answer is JSON (application/json or application/problem+json), and
        return (response, parsed body)."""
        if body is not None:
            kwargs["json"] = body
        response = self.request(method, path, **kwargs)
        check_status(response, expect)
        ctype = response.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype not in ("application/json", "application/problem+json"):
            raise AssertionError("%s %s: expected a JSON answer, got %r: %s"
                                 % (method, path, ctype, response.text[:500]))
        return response, response.json()

    def get_json(self, path, expect=200, **kwargs):
        return self.json("GET", path, expect=expect, **kwargs)[1]

    def post_json(self, path, body, expect=200, **kwargs):
        return self.json("POST", path, body, expect=expect, **kwargs)[1]

    def close(self):
        self.session.close()


def check_status(response, expect):
    """Assert response.status_code is expect (an int or a collection)."""
    wanted = (expect,) if isinstance(expect, int) else tuple(expect)
    if response.status_code not in wanted:
        raise AssertionError("%s %s: status %d, expected %s; body: %s"
                             % (response.request.method, response.url,
                                response.status_code,
                                "/".join(map(str, wanted)),
                                response.text[:500]))


# --- what a test sees ----------------------------------------------------------

class Env:
    """One test's view of the servers: the run's PKI, its own httpd, the
    shared MariaDB (started on first use), clients per role, and the
    error-log expectations."""

    def __init__(self, pki, httpd, db_provider):
        self.pki = pki
        self.httpd = httpd
        self._db_provider = db_provider
        self._clients = []

    @property
    def db(self):
        """The session's MariaDB; restarted after the test if it stopped it."""
        return self._db_provider()

    @property
    def sql_dir(self):
        """The project's schema dir (sql/ in the source tree)."""
        return os.path.join(os.environ.get("SM_TOP_SRCDIR", ""), "sql")

    def role_database(self, role, sql_files=()):
        """A fresh database and account for role (keyserver, mediastore,
        retail) with sql_files applied."""
        if role not in DB_ROLES:
            raise ValueError("unknown role %r (one of %s)" % (role, ", ".join(DB_ROLES)))
        return self.db.create_role_database(role, sql_files)

    def migrated_database(self, role):
        """A fresh database and account for role with every migration of
        sql/<role>/ applied by secmedia-db-migrate."""
        database = self.role_database(role)
        self.db.migrate(database.name, role, self.sql_dir)
        return database

    def load_project_module(self, name, symbol=None):
        """LoadModule a module built in this tree, e.g. "mod_keyserver"."""
        self.httpd.load_module(module_path(name), symbol)

    def client(self, role=None, http=False, timeout=10):
        """A keep-alive client of this test's httpd: HTTPS verified against
        the run CA, presenting role's client certificate (None: no cert);
        http=True for the plain HTTP listener."""
        if http:
            client = Client(self.httpd.http_url, timeout=timeout)
        else:
            credential = self.pki.client(role) if role else None
            client = Client(self.httpd.https_url, self.pki.ca_cert, credential,
                            timeout)
        self._clients.append(client)
        return client

    def expect_log(self, *message_ids):
        """These ids (SMnnnnn or AHnnnnn) must appear in the error log."""
        self.httpd.log_policy.expect(*message_ids)

    def allow_log(self, *ids_or_patterns):
        """These ids or regexes may appear in the error log."""
        self.httpd.log_policy.allow(*ids_or_patterns)

    def close(self):
        for client in self._clients:
            client.close()
        self._clients.clear()
