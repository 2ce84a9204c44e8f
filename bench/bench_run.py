"""The end of a bench run, shared by the benches: stop what it started and
keep its files only when something failed."""


def finish(work, ok, servers, log):
    """Stops servers in order (None: never started), then every process the
    harness registered; removes the run's directory when ok, else keeps it
    (configs, logs) and says where.

    A run whose httpd logged an error line the tests would not accept
    (harness.Httpd.error_log_violations) fails too, after its figures were
    printed: a figure measured while the server was failing is no figure."""
    import harness  # the benches put tests/integration on sys.path first
    for server in servers:
        if server is not None:
            server.stop()
    harness.REGISTRY.kill_all()
    problems = []
    if ok:
        for server in servers:
            if server is not None and hasattr(server, "error_log_violations"):
                problems += server.error_log_violations()
    for problem in problems:
        log("httpd error log: %s" % problem)
    if ok and not problems:
        work.remove()
    else:
        log("bench files kept in %s" % work.path)
    if problems:
        raise SystemExit("the bench's httpd logged %d unexpected error line(s), above"
                         % len(problems))
