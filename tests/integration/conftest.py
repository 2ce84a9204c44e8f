"""pytest glue for the integration harness (harness.py): a session-wide CA
and MariaDB, a fresh httpd per test, the error-log policy checked after each
test, and the run's temp dir kept (its path printed) when anything failed."""

import os

import pytest

import harness

_run = {"workspace": None, "kept": False}


def pytest_configure(config):
    harness.install_signal_handlers()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Fixtures need the test's outcome at teardown (check the log only when
    # the test itself passed: a failure already explains itself).
    outcome = yield
    report = outcome.get_result()
    setattr(item, "sm_report_" + report.when, report)


def _call_passed(request):
    report = getattr(request.node, "sm_report_call", None)
    return report is not None and report.passed


def pytest_sessionfinish(session, exitstatus):
    # Fixtures have stopped their servers by now; this is the safety net.
    harness.REGISTRY.kill_all()
    workspace = _run["workspace"]
    if workspace is None:
        return
    if exitstatus == 0 and not os.environ.get("SM_KEEP_TMP"):
        workspace.remove()
    else:
        _run["kept"] = True


def pytest_terminal_summary(terminalreporter, exitstatus):
    if _run["kept"]:
        terminalreporter.write_line(
            "integration: configs and logs of this run kept in %s"
            % _run["workspace"].path)


@pytest.fixture(scope="session")
def sm_workspace():
    """The run's temp dir (harness.Workspace)."""
    _run["workspace"] = harness.Workspace()
    return _run["workspace"]


@pytest.fixture(scope="session")
def pki(sm_workspace):
    """The run's CA, server and client certificates (harness.TestPKI)."""
    return harness.TestPKI(os.path.join(sm_workspace.path, "pki"))


@pytest.fixture(scope="session")
def mariadb_server(sm_workspace):
    server = harness.MariaDB(os.path.join(sm_workspace.path, "mariadb"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def db(mariadb_server):
    """The session's MariaDB (harness.MariaDB), running."""
    yield mariadb_server
    # A test that stopped the database must not leave it down for the next.
    if not mariadb_server.running:
        mariadb_server.start()


def _stop_and_check(request, server):
    # Captured, so shown only in a failure's report.
    print("httpd config and logs of this test: %s" % server.directory)
    try:
        server.stop()
    finally:
        if _call_passed(request):
            problems = server.error_log_violations()
            if problems:
                pytest.fail("error log %s:\n  %s"
                            % (server.error_log, "\n  ".join(problems)),
                            pytrace=False)


@pytest.fixture
def httpd(request, sm_workspace, pki):
    """A configured, not yet started httpd (harness.Httpd) for this test.
    Stopped afterwards; then its error log must satisfy its log_policy."""
    server = harness.Httpd(sm_workspace.new_dir(request.node.name), pki)
    yield server
    _stop_and_check(request, server)


@pytest.fixture
def env(request, pki, httpd):
    """Everything a server test needs (harness.Env)."""
    environment = harness.Env(pki, httpd,
                              lambda: request.getfixturevalue("db"))
    yield environment
    environment.close()


@pytest.fixture
def peer_env(request, sm_workspace, pki, env):
    """A second harness.Env with an httpd of its own (same PKI, same
    MariaDB), for a server a test must be able to stop while the one in
    env keeps running, e.g. the key server a media store notifies. Stopped
    after env's httpd (a peer vanishing first could make env's server log
    a warning), then its error log is checked like env's."""
    server = harness.Httpd(sm_workspace.new_dir(request.node.name + "-peer"), pki)
    environment = harness.Env(pki, server, lambda: request.getfixturevalue("db"))
    yield environment
    environment.close()
    env.httpd.stop()
    _stop_and_check(request, server)


@pytest.fixture
def sold(env):
    """A key server (activation limit 2) with a work on contract and one
    paid sale to a device: (ks, catalog, device, reservation)."""
    from keyserver_setup import Catalog, Device, KeyServer
    ks = KeyServer(env, activation_limit=2)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    return ks, cat, device, cat.sold(device)
