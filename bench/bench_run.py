"""The end of a bench run, shared by the benches: stop what it started and
keep its files only when something failed."""


def finish(work, ok, servers, log):
    """Stops servers in order (None: never started), then every process the
    harness registered; removes the run's directory when ok, else keeps it
    (configs, logs) and says where."""
    import harness  # the benches put tests/integration on sys.path first
    for server in servers:
        if server is not None:
            server.stop()
    harness.REGISTRY.kill_all()
    if ok:
        work.remove()
    else:
        log("bench files kept in %s" % work.path)
