"""common/sm_db against a real MariaDB, through tests/db/db_pool_helper:
typed statements, error classes, deadlock retry, pool exhaustion, the
server going away and coming back under one pool."""

import os
import subprocess

import pytest


def helper_path():
    path = os.path.join(os.environ.get("SM_TESTS_BUILDDIR", ""), "db", "db_pool_helper")
    if not os.access(path, os.X_OK):
        pytest.fail("%s not built (make -C tests db/db_pool_helper)" % path)
    return path


def helper_env(database):
    return dict(os.environ, SM_DB_SOCKET=database.socket, SM_DB_USER=database.user,
                SM_DB_PASSWORD=database.password, SM_DB_NAME=database.name)


def run_helper(database, scenario):
    result = subprocess.run([helper_path(), scenario], env=helper_env(database),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    return result.stdout


@pytest.mark.parametrize("scenario", ["basic", "modes", "fairness", "midresult", "deadlock", "exhausted"])
def test_pool(env, scenario):
    run_helper(env.role_database("mediastore"), scenario)


CALLS_SETUP = """
DROP TABLE IF EXISTS t_calls;
CREATE TABLE t_calls (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB;
INSERT INTO t_calls VALUES (1, 0);
DROP PROCEDURE IF EXISTS calls_bump;
DROP PROCEDURE IF EXISTS calls_insert_commit;
DROP PROCEDURE IF EXISTS calls_insert;
DELIMITER //
CREATE PROCEDURE calls_bump(IN p_id INT) BEGIN
    UPDATE t_calls SET n = n + 1 WHERE id = p_id;
    SELECT id, n FROM t_calls WHERE id = p_id;
END //
CREATE PROCEDURE calls_insert_commit(IN p_id INT) BEGIN
    INSERT INTO t_calls VALUES (p_id, 0);
    COMMIT;
END //
CREATE PROCEDURE calls_insert(IN p_id INT) BEGIN
    INSERT INTO t_calls VALUES (p_id, 0);
END //
DELIMITER ;
"""


def test_stored_procedure_calls(env):
    """CALLs through sm_db (the key server's license path uses two): the
    rows of a CALL, the procedure's status read after them, a procedure
    that commits the transaction itself (sm_db_exec_commit), one that
    fails inside before its COMMIT, one that does not commit."""
    database = env.role_database("mediastore")
    env.db.execute(CALLS_SETUP, database.name)
    run_helper(database, "calls")


def run_modes_with_server_default(env, variable, value, restore):
    """The "modes" scenario while the server's global default of variable
    is value (restore: the harness's own)."""
    database = env.role_database("mediastore")
    env.db.execute("SET GLOBAL %s = %s" % (variable, value))
    try:
        run_helper(database, "modes")
    finally:
        env.db.execute("SET GLOBAL %s = %s" % (variable, restore))


def test_plain_writes_commit_when_the_server_default_is_autocommit_off(env):
    """A server configured with autocommit off by default: sm_db's sessions
    set it on at connect, so plain writes still commit on their own (the
    "modes" scenario checks them from a second session)."""
    run_modes_with_server_default(env, "autocommit", "0", "1")


def test_sessions_are_repeatable_read_when_the_server_default_is_not(env):
    """The ledger sealer's two queue reads must share one snapshot and its
    locking reads must gap-lock: sm_db's sessions set REPEATABLE READ at
    connect, whatever the server's default (the "modes" scenario reads the
    session's level)."""
    run_modes_with_server_default(env, "tx_isolation", "'READ-COMMITTED'", "'REPEATABLE-READ'")


def test_unreachable_database_is_unavailable(env):
    database = env.role_database("mediastore")
    env.db.stop()
    out = run_helper(database, "unavailable")
    assert "cannot connect" in out and database.password not in out


def test_restart_with_busy_pool_needs_no_client_retry(env):
    """Several idle connections trusted without a ping (recently used): after
    a server restart the first transaction finds one dead, and a connection
    opened before that is replaced, in its slot, before the retry uses it
    (the dead one and the one replaced are the two discarded)."""
    database = env.role_database("mediastore")
    proc = subprocess.Popen([helper_path(), "interactive"],
                            env=dict(helper_env(database), SM_DB_HELPER_IDLE="busy"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        def say(command):
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
            return proc.stdout.readline().strip()

        assert say("fill") == "filled"
        assert say("query").startswith("ok connects=4")
        env.db.restart()
        line = say("query")
        assert line.startswith("ok connects=5 discarded=2"), line
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_database_restart_under_one_pool(env):
    database = env.role_database("mediastore")
    proc = subprocess.Popen([helper_path(), "interactive"], env=helper_env(database),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        def ask():
            proc.stdin.write("query\n")
            proc.stdin.flush()
            return proc.stdout.readline().strip()

        assert ask().startswith("ok connects=1")
        env.db.stop()
        assert ask().startswith("unavailable")
        assert ask().startswith("unavailable")
        env.db.start()
        # The stale pooled connection is discarded, a new one made.
        line = ask()
        assert line.startswith("ok connects=2"), line
        assert ask().startswith("ok connects=2")
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0
