"""Self-test of the integration harness: every server feature the project's
server tests rely on, each checked against the real servers."""

import os
import signal
import subprocess
import sys

import pytest
import requests

import harness


def _write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


# --- MariaDB -------------------------------------------------------------------

def test_role_database_with_sql_files_and_query(db, sm_workspace):
    sql = sm_workspace.new_dir("sql")
    schema = _write(sql, "001-schema.sql",
                    "CREATE TABLE works (id VARCHAR(64) PRIMARY KEY,"
                    " title TEXT NOT NULL, note TEXT NULL);\n")
    data = _write(sql, "002-data.sql",
                  "INSERT INTO works VALUES ('w1', 'tab\there', NULL);\n")
    role = db.create_role_database("keyserver", [schema, data])
    assert role.name == "sm_keyserver" and role.socket == db.socket

    assert db.query("SELECT id, title, note FROM works", role.name) == \
        [("w1", "tab\there", None)]
    # The role's account works with its password...
    assert db.query("SELECT CURRENT_USER(), COUNT(*) FROM works", role.name,
                    user=role.user, password=role.password) == \
        [("sm_keyserver@localhost", "1")]
    with pytest.raises(harness.MariaDBError):
        db.query("SELECT 1", user=role.user, password=role.password + "x")
    # ...and sees no other role's database.
    retail = db.create_role_database("retail")
    with pytest.raises(harness.MariaDBError, match="denied"):
        db.query("SELECT * FROM sm_keyserver.works", user=retail.user,
                 password=retail.password)
    # Recreating a role database starts it empty.
    role = db.create_role_database("keyserver")
    assert db.query("SHOW TABLES", role.name) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as www-data")
def test_socket_reachable_by_www_data(db):
    # httpd's children run as www-data and connect through the socket.
    role = db.create_role_database("mediastore")
    result = subprocess.run(
        ["runuser", "-u", "www-data", "--", "mariadb", "--no-defaults",
         "--socket=" + role.socket, "--user=" + role.user,
         "--password=" + role.password, "--batch", "--skip-column-names",
         "-e", "SELECT 7*6"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "42"


def test_database_stop_and_start_mid_test(db):
    role = db.create_role_database("mediastore")
    db.execute("CREATE TABLE t (v INT); INSERT INTO t VALUES (42);", role.name)
    pid = db.pid
    db.stop()
    assert not db.running
    assert not harness.process_running(pid)
    assert not db.ping()
    with pytest.raises(harness.MariaDBError):
        db.query("SELECT v FROM t", role.name)
    db.start()
    assert db.pid != pid
    assert db.query("SELECT v FROM t", role.name) == [("42",)]


# --- httpd ---------------------------------------------------------------------

def test_static_file_over_https_and_http(env):
    body = os.urandom(300 * 1024)
    env.httpd.write_doc("media/blob.bin", body)
    env.httpd.start()

    https = env.client()
    response = https.get("/media/blob.bin")
    assert response.status_code == 200 and response.content == body
    ranged = https.get("/media/blob.bin", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == body[10:20]

    plain = env.client(http=True)
    response = plain.get("/media/blob.bin")
    assert response.status_code == 200 and response.content == body

    # The certificate also verifies by IP address (SAN 127.0.0.1)...
    by_ip = harness.Client("https://127.0.0.1:%d" % env.httpd.https_port,
                           env.pki.ca_cert)
    assert by_ip.get("/media/blob.bin").status_code == 200
    by_ip.close()
    # ...and verification is real: a client trusting another CA refuses it.
    distrustful = harness.Client(env.httpd.https_url, env.pki.foreign_ca_cert)
    with pytest.raises(requests.exceptions.SSLError):
        distrustful.get("/media/blob.bin")
    distrustful.close()


def test_json_helpers(env):
    env.httpd.write_doc("api/thing.json", '{"id": "w1", "n": 3}')
    env.httpd.write_doc("api/plain.txt", "not json")
    env.httpd.start()
    client = env.client("owner")
    assert client.get_json("/api/thing.json") == {"id": "w1", "n": 3}
    with pytest.raises(AssertionError, match="expected a JSON answer"):
        client.get_json("/api/plain.txt")
    with pytest.raises(AssertionError, match="status 404, expected 200"):
        client.get_json("/api/missing.json")
    response, _ = client.json("GET", "/api/thing.json", expect=(200, 201))
    assert response.headers["Content-Type"].startswith("application/json")


def test_client_certificate_location(env):
    env.httpd.write_doc("private/doc.txt", "secret\n")
    env.httpd.write_doc("public/doc.txt", "hello\n")
    env.httpd.require_client_cert("/private")
    env.httpd.start()

    owner = env.client("owner")
    response = owner.get("/private/doc.txt")
    assert response.status_code == 200 and response.text == "secret\n"

    # The subject as mod_ssl sees it matches what the harness exposes.
    whoami = env.client("retailer1").get("/sm-harness/whoami")
    assert whoami.headers["X-SM-Client-Verify"] == "SUCCESS"
    assert whoami.headers["X-SM-Client-S-DN"] == \
        env.pki.client("retailer1").subject_dn == "CN=retailer1,O=secmedia tests"
    assert whoami.headers["X-SM-Client-I-DN"] == env.pki.ca_dn

    anonymous = env.client()
    assert anonymous.get("/public/doc.txt").status_code == 200
    assert anonymous.get("/sm-harness/whoami").headers["X-SM-Client-Verify"] == "NONE"
    # Refused without a certificate: authz_core logs the denial at error level.
    env.expect_log("AH01630")
    assert anonymous.get("/private/doc.txt").status_code == 403

    # A certificate from another CA does not get through the handshake.
    with pytest.raises(requests.exceptions.SSLError):
        env.client(harness.FOREIGN_ROLE).get("/private/doc.txt")


def test_vhost_requiring_client_certificates(env):
    env.httpd.ssl_verify_client = "require"
    env.httpd.write_doc("doc.txt", "server to server\n")
    env.httpd.start()
    assert env.client("mediastore").get("/doc.txt").status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        env.client().get("/doc.txt")
    with pytest.raises(requests.exceptions.SSLError):
        env.client(harness.FOREIGN_ROLE).get("/doc.txt")


def test_load_module_by_path_and_graceful_restart(env):
    env.httpd.write_doc("new.txt", "new\n")
    # A module given by absolute path, as project modules will be.
    env.httpd.load_module(os.path.join(harness.APACHE_MODULE_DIR, "mod_rewrite.so"))
    env.httpd.add_vhost_config("RewriteEngine on\nRewriteRule ^/old$ /new.txt [PT]")
    env.httpd.start()
    client = env.client()
    assert client.get("/old").text == "new\n"
    master = env.httpd.master_pid

    env.httpd.add_vhost_config('Header always set X-Generation "2"')
    env.httpd.restart()
    assert env.httpd.master_pid == master and env.httpd.running
    assert client.get("/old").headers.get("X-Generation") == "2"


def test_project_module_path_names_what_to_build(monkeypatch, sm_workspace):
    monkeypatch.setenv("SM_TOP_BUILDDIR", sm_workspace.path)
    with pytest.raises(harness.HarnessError, match="build it first"):
        harness.module_path("mod_keyserver")
    built = os.path.join(sm_workspace.path, "mod_keyserver", ".libs")
    os.makedirs(built)
    _write(built, "mod_keyserver.so", "")
    assert harness.module_path("mod_keyserver") == \
        os.path.join(built, "mod_keyserver.so")


def test_configtest_detects_broken_config(httpd):
    ok, output = httpd.configtest()
    assert ok, output
    httpd.start()

    httpd.add_vhost_config("SSLVerifyClient sometimes")
    ok, output = httpd.configtest()
    assert not ok
    assert "SSLVerifyClient" in output
    # A graceful restart onto it is refused and the server keeps running.
    with pytest.raises(harness.HttpdError, match="configtest"):
        httpd.restart()
    assert httpd.running

    broken = harness.Httpd(httpd.directory + "-unknown", httpd.pki)
    broken.add_config("SecmediaNoSuchDirective on")
    ok, output = broken.configtest()
    assert not ok and "Invalid command 'SecmediaNoSuchDirective'" in output
    with pytest.raises(harness.HttpdError):
        broken.start()
    assert not broken.running


def test_single_process_mode(env):
    env.httpd.single_process = True
    env.httpd.write_doc("doc.txt", "x\n")
    env.httpd.start()
    assert env.httpd.pids() == [env.httpd.master_pid]
    assert env.client().get("/doc.txt").text == "x\n"
    pid = env.httpd.master_pid
    env.httpd.stop()
    assert not harness.process_running(pid)


# --- error-log policy ----------------------------------------------------------

_LOG = """\
[Sun Nov 22 03:38:30.384103 2026] [mpm_event:notice] [pid 1:tid 1] AH00489: Apache/2.4.71 configured -- resuming normal operations
[Sun Nov 22 03:38:30.445524 2026] [keyserver:error] [pid 2:tid 3] [client 127.0.0.1:43194] SM01002: database unavailable
[Sun Nov 22 03:38:30.445524 2026] [keyserver:info] [pid 2:tid 3] SM01999: informational, never checked
"""


def test_error_log_policy_checker():
    policy = harness.ErrorLogPolicy()
    problems = policy.violations(_LOG)
    assert len(problems) == 1 and "SM01002" in problems[0]

    policy.expect("SM01002")
    assert policy.violations(_LOG) == []

    # Another id, a warning, a line without id and raw stderr all fail.
    for extra in [
            "[t] [keyserver:error] [pid 2:tid 3] SM01003: other error",
            "[t] [retail:warn] [pid 2:tid 3] SM02001: a warning",
            "[t] [core:crit] [pid 2:tid 3] no id at all",
            "==1234==ERROR: AddressSanitizer: heap-use-after-free"]:
        problems = policy.violations(_LOG + extra + "\n")
        assert problems == ["unexpected %s line: %s" % (
            harness.parse_error_log(extra)[0].level, extra)], extra

    # An expected id that never shows up is a failure too.
    policy.expect("SM09999")
    assert policy.violations(_LOG) == ["expected log id SM09999 never appeared"]

    allowing = harness.ErrorLogPolicy()
    allowing.allow("SM01002")
    assert allowing.violations(_LOG) == []
    assert allowing.violations("") == []   # allowed, not required
    by_pattern = harness.ErrorLogPolicy()
    by_pattern.allow(r"database unavailable")
    assert by_pattern.violations(_LOG) == []

    with pytest.raises(ValueError):
        policy.expect("SM1002")


def test_error_log_policy_on_a_provoked_error(env):
    env.httpd.add_vhost_config("<Location /denied>\n    Require all denied\n</Location>")
    env.httpd.start()
    assert env.client().get("/denied").status_code == 403
    problems = env.httpd.error_log_violations()
    assert len(problems) == 1 and "AH01630" in problems[0], problems
    assert len(env.httpd.log_entries("AH01630")) == 1
    # Declared, the same log passes (and the fixture's check after the test).
    env.expect_log("AH01630")
    assert env.httpd.error_log_violations() == []


def test_clean_startup_log(env):
    # No AH00558 (ServerName), AH01909 (certificate name) or any other
    # warning from a plain start, restart and stop.
    env.httpd.start()
    env.httpd.restart()
    env.httpd.stop()
    assert env.httpd.error_log_violations() == []
    assert env.httpd.log_entries("AH00489")   # the log was really written


def test_recommended_single_child_process_model(env):
    # CONFIGURATION.md §1.3: one child with a thread per request in flight.
    # It must start, restart gracefully and stop without an error line
    # (mpm_event logs AH10159 at start when MinSpareThreads is not below
    # MaxRequestWorkers).
    env.httpd.mpm = harness.single_child_mpm(64)
    env.httpd.write_doc("doc.txt", "x\n")
    env.httpd.start()
    assert "ThreadsPerChild 64" in env.httpd.config_text().splitlines()
    assert len(env.httpd.pids()) == 2      # the parent and one child
    env.httpd.restart()
    assert env.client().get("/doc.txt").text == "x\n"
    env.httpd.stop()
    assert env.httpd.error_log_violations() == []
    assert not env.httpd.log_entries("AH10159")


# --- teardown ------------------------------------------------------------------

_left_behind = {}


def test_teardown_part1_start_servers(env, db):
    env.httpd.start()
    env.client("owner").get("/sm-harness/whoami")
    _left_behind["httpd"] = env.httpd.pids()
    assert len(_left_behind["httpd"]) >= 2   # master and a child
    db.stop()   # left stopped on purpose: the db fixture must restart it


def test_teardown_part2_nothing_left(db):
    pids = _left_behind.get("httpd")
    if not pids:
        pytest.skip("needs test_teardown_part1_start_servers to run first")
    assert [p for p in pids if harness.process_running(p)] == []
    assert not set(pids) & set(harness.REGISTRY.pids())
    assert db.running and db.ping()


def test_sigterm_stops_started_servers(sm_workspace):
    # A run killed from outside (e.g. a CI timeout) must not leave httpd behind.
    script = (
        "import os, sys, time, harness\n"
        "harness.install_signal_handlers()\n"
        "ws = harness.Workspace(sys.argv[1])\n"
        "pki = harness.TestPKI(os.path.join(ws.path, 'pki'))\n"
        "httpd = harness.Httpd(ws.new_dir('orphan'), pki)\n"
        "httpd.start()\n"
        "print(' '.join(map(str, httpd.pids())), flush=True)\n"
        "time.sleep(60)\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(harness.__file__),
               PYTHONDONTWRITEBYTECODE="1")
    child = subprocess.Popen([sys.executable, "-c", script, sm_workspace.path],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        pids = [int(p) for p in child.stdout.readline().split()]
        assert len(pids) >= 2 and all(harness.process_running(p) for p in pids)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == -signal.SIGTERM
        assert [p for p in pids if harness.process_running(p)] == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _closing_server(answer_from):
    """A loopback HTTP server that closes each connection it accepts without
    answering, until the answer_from-th, which gets 200 "ok". Returns
    (url, accepted connections list, stop)."""
    import socket
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    accepted, stopping = [], threading.Event()

    def run():
        while not stopping.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                accepted.append(conn.recv(65536))
                if len(accepted) >= answer_from:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                 b"Connection: close\r\n\r\nok")
    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def stop():
        stopping.set()
        thread.join(timeout=5)
        srv.close()
    return "http://127.0.0.1:%d" % srv.getsockname()[1], accepted, stop


def test_client_resends_once_after_a_close_without_answer():
    """The test client sends a request again, once, on a new connection when
    the server closed the connection without any answer (an idle kept-alive
    connection closed by httpd); twice closed is an error; a body that
    cannot be sent twice (a file) is never resent."""
    import io
    url, accepted, stop = _closing_server(answer_from=2)
    try:
        r = harness.Client(url).request("POST", "/x", json={"a": 1})
        assert r.status_code == 200 and r.text == "ok" and len(accepted) == 2
    finally:
        stop()
    url, accepted, stop = _closing_server(answer_from=3)
    try:
        with pytest.raises(requests.exceptions.ConnectionError):
            harness.Client(url).request("POST", "/x", json={"a": 1})
        assert len(accepted) == 2
    finally:
        stop()
    url, accepted, stop = _closing_server(answer_from=2)
    try:
        with pytest.raises(requests.exceptions.ConnectionError):
            harness.Client(url).request("POST", "/x", data=io.BytesIO(b"once"))
        assert len(accepted) == 1
    finally:
        stop()
