"""The module foundation seen from outside: migrations, problem+json
answers, routing, directive checks in configtest."""

import os

import pytest

import harness
from mediastore_setup import MediaStore, copy_sql_dir

PROBLEM_BASE = "https://secmedia.example/problems/"


def assert_problem(response, status, slug):
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers.get("Cache-Control") == "no-store"
    doc = response.json()
    assert doc["type"] == PROBLEM_BASE + slug, doc
    assert doc["status"] == status and doc["title"] and doc["detail"]
    return doc


def test_migrations_apply_once_and_are_recorded(env, sm_workspace):
    database = env.migrated_database("mediastore")
    rows = env.db.query("SELECT version, name FROM schema_version ORDER BY version",
                        database.name)
    files = sorted(os.listdir(os.path.join(env.sql_dir, "mediastore")))
    assert rows == [(str(int(f[:4])), f) for f in files]
    assert rows[0] == ("1", "0001_initial.sql")
    tables = {r[0] for r in env.db.query("SHOW TABLES", database.name)}
    assert {"works", "delivery_events", "schema_version"} <= tables
    engines = env.db.query(
        "SELECT DISTINCT ENGINE, TABLE_COLLATION FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = '%s'" % database.name)
    assert engines == [("InnoDB", "utf8mb4_bin")]
    # A second run changes nothing.
    out = env.db.migrate(database.name, "mediastore", env.sql_dir)
    assert "0 migration(s) applied" in out


def _schema(env, database):
    """Everything a schema is made of, in comparable form: tables with
    their definitions and rows (schema_version without its times),
    routines and triggers."""
    q = lambda sql: env.db.query(sql, database)   # noqa: E731
    tables = sorted(r[0] for r in q("SHOW TABLES"))
    shape = {}
    for table in tables:
        shape[table] = q("SHOW CREATE TABLE `%s`" % table)[0][1]
        columns = ("version, name, sha256, min_module_version" if table == "schema_version"
                   else "*")
        shape[table + " rows"] = q("SELECT %s FROM `%s` ORDER BY 1" % (columns, table))
    shape["routines"] = q("SELECT ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION "
                          "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '%s' "
                          "ORDER BY 1" % database)
    shape["triggers"] = q("SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, "
                          "ACTION_TIMING, ACTION_STATEMENT FROM information_schema.TRIGGERS "
                          "WHERE TRIGGER_SCHEMA = '%s' ORDER BY 1" % database)
    return shape


@pytest.mark.parametrize("role", ["keyserver", "mediastore", "retail"])
def test_schema_file_makes_the_database_the_migrations_make(env, role):
    """sql/<role>.sql, for a new database in one `mariadb < file`, gives
    the same tables, rows, routines, triggers and schema_version records
    as the migrator; the migrator then finds nothing to do."""
    migrated = env.migrated_database(role)
    from_file = env.db.create_role_database(
        role, [os.path.join(env.sql_dir, role + ".sql")], name="sm_%s_file" % role)
    expected = _schema(env, migrated.name)
    assert len(expected["routines"]) + len(expected) > 3
    assert _schema(env, from_file.name) == expected
    out = env.db.migrate(from_file.name, role, env.sql_dir)
    assert "0 migration(s) applied" in out


def test_migration_changed_after_apply_is_refused(env, sm_workspace):
    database = env.migrated_database("mediastore")
    sql = copy_sql_dir(env, os.path.join(sm_workspace.new_dir("sql-copy"), "sql"))
    with open(os.path.join(sql, "mediastore", "0001_initial.sql"), "a") as f:
        f.write("\n-- edited\n")
    with pytest.raises(harness.MariaDBError, match="changed after it was applied"):
        env.db.migrate(database.name, "mediastore", sql)


def test_new_migration_is_applied_in_order(env, sm_workspace):
    database = env.migrated_database("mediastore")
    sql = copy_sql_dir(env, os.path.join(sm_workspace.new_dir("sql-copy"), "sql"))
    with open(os.path.join(sql, "mediastore", "0999_extra.sql"), "w") as f:
        f.write("CREATE TABLE extra (id INT PRIMARY KEY) ENGINE=InnoDB;\n")
    out = env.db.migrate(database.name, "mediastore", sql)
    assert "applied: 0999_extra.sql" in out and "1 migration(s) applied" in out
    assert env.db.query("SELECT MAX(version) FROM schema_version", database.name) == [("999",)]
    # The database is now ahead of the real tree: the tool refuses to guess.
    with pytest.raises(harness.MariaDBError, match="lacks"):
        env.db.migrate(database.name, "mediastore", env.sql_dir)


def test_migration_records_the_oldest_module_it_allows(env, sm_workspace):
    """A migration that makes older modules unsafe says so in a directive
    line; the tool records it (modules built for an older schema then
    refuse the database), records 0 for every other migration, and refuses
    a directive it does not know."""
    import re
    database = env.migrated_database("mediastore")
    expected = []
    for name in sorted(os.listdir(os.path.join(env.sql_dir, "mediastore"))):
        with open(os.path.join(env.sql_dir, "mediastore", name)) as f:
            m = re.search(r"^-- secmedia-migrate: min-module-version (\d+)$", f.read(), re.M)
        expected.append((str(int(name[:4])), m.group(1) if m else "0"))
    assert env.db.query("SELECT version, min_module_version FROM schema_version ORDER BY version",
                        database.name) == expected
    assert ("3", "3") in expected   # preview files (schema version 3)
    sql = copy_sql_dir(env, os.path.join(sm_workspace.new_dir("sql-copy"), "sql"))
    with open(os.path.join(sql, "mediastore", "0998_breaking.sql"), "w") as f:
        f.write("-- Older modules would write the old way.\n"
                "-- secmedia-migrate: min-module-version 998\n"
                "CREATE TABLE breaking (id INT PRIMARY KEY) ENGINE=InnoDB;\n")
    out = env.db.migrate(database.name, "mediastore", sql)
    assert "applied: 0998_breaking.sql" in out
    assert env.db.query("SELECT min_module_version FROM schema_version WHERE version = 998",
                        database.name) == [("998",)]
    with open(os.path.join(sql, "mediastore", "0999_typo.sql"), "w") as f:
        f.write("-- secmedia-migrate: min-module 999\nSELECT 1;\n")
    with pytest.raises(harness.MariaDBError, match="unknown directive"):
        env.db.migrate(database.name, "mediastore", sql)
    assert env.db.query("SELECT MAX(version) FROM schema_version", database.name) == [("998",)]


def test_unknown_path_and_method_answer_problem_json(env):
    MediaStore(env)
    env.httpd.start()
    client = env.client()
    assert_problem(client.get("/nothing/here"), 404, "not-found")
    r = client.post("/works/w1")
    assert_problem(r, 405, "method-not-allowed")
    assert set(r.headers["Allow"].split(",")) == {"PUT", "GET", "HEAD"}
    # HEAD of a problem: same status and headers, no body.
    r = client.head("/nothing/here")
    assert r.status_code == 404 and r.content == b""


@pytest.mark.parametrize("directive, value, message", [
    ("MediaStoreMaxUploadSize", "300x", "unknown unit"),
    ("MediaStoreMaxUploadSize", "-5", "is not a size"),
    ("MediaStoreMaxUploadSize", "99999999999999999999", "out of range"),
    ("MediaStoreDBPoolSize", "0", "out of range"),
    ("MediaStoreDBPort", "70000", "out of range"),
    ("MediaStoreKeyServerURL", "http://ks.example", "https"),
    ("MediaStoreKeyServerCAFile", "/nonexistent/ca.pem", "cannot access"),
    ("MediaStoreStorageDir", "/nonexistent-dir", "cannot access"),
    ("MediaStoreJWKSCacheLifetime", "5 minutes", "TAKE1|one argument|unknown unit"),
    ("MediaStoreDBAcquireTimeout", "2h", "not a duration"),
])
def test_configtest_rejects_bad_values(env, directive, value, message):
    MediaStore(env)
    env.httpd.add_vhost_config("%s %s" % (directive, value))
    ok, output = env.httpd.configtest()
    assert not ok
    assert directive in output
    import re
    assert re.search(message, output), output


def test_configtest_rejects_unknown_role(env):
    MediaStore(env, extra='MediaStoreClientRole reseller "CN=x,O=y"')
    ok, output = env.httpd.configtest()
    assert not ok and "unknown role \"reseller\"" in output and "owner" in output


def test_configtest_rejects_world_readable_password_file(env):
    ms = MediaStore(env)
    os.chmod(ms.password_file, 0o644)
    ok, output = env.httpd.configtest()
    assert not ok and "accessible by others" in output
    assert ms.db.password not in output


def test_configtest_fails_clearly_when_a_required_directive_is_missing(env):
    env.load_project_module("mod_mediastore")
    env.httpd.add_vhost_config("MediaStoreMaxUploadSize 1G")
    ok, output = env.httpd.configtest()
    assert not ok
    assert "SM02000" in output and "MediaStoreStorageDir is required" in output


def test_good_config_passes_configtest(env):
    MediaStore(env)
    ok, output = env.httpd.configtest()
    assert ok, output


def _sample(name):
    with open(os.path.join(os.environ["SM_TOP_SRCDIR"], name)) as f:
        return f.read()


def test_sample_config_lists_every_directive_and_passes_configtest(env):
    import re
    conf = _sample("httpd-conf/mediastore.conf")
    names = set(re.findall(r'AP_INIT_\w+\("(MediaStore\w+)"', _sample("mod_mediastore/ms_config.c")))
    names |= {"MediaStore" + n for n in
              re.findall(r'prefix "(DB\w+)"', _sample("common/httpd/smh_config.h"))}
    assert len(names) > 20
    missing = [n for n in sorted(names) if not re.search(r"^\s*%s\s" % n, conf, re.M)]
    assert missing == [], "directives missing from httpd-conf/mediastore.conf: %s" % missing
    # The sample itself is valid once its paths point at real files.
    ms = MediaStore(env)
    pki = env.pki
    for old, new in (("/var/lib/secmedia/mediastore", ms.storage),
                     ("/etc/secmedia/keyserver-ca.pem", pki.ca_cert),
                     ("/etc/secmedia/mediastore.crt", pki.client("mediastore").cert),
                     ("/etc/secmedia/mediastore.key", pki.client("mediastore").key),
                     ("/etc/secmedia/mediastore-db.password", ms.password_file)):
        conf = conf.replace(old, new)
    env.httpd.add_config(conf)
    ok, output = env.httpd.configtest()
    assert ok, output
    load = _sample("httpd-conf/mediastore.load")
    assert "LoadModule mediastore_module /usr/lib/apache2/modules/mod_mediastore.so" in load


@pytest.mark.parametrize("module", ["keyserver", "mediastore", "retail"])
def test_a2enmod_enables_mod_ssl_with_each_module(sm_workspace, module):
    """`a2enmod <module>` alone is enough on Debian: the .load file
    declares mod_ssl (client certificates) as a dependency. Run on a copy
    of Debian's mods-available (APACHE_CONFDIR), not on /etc/apache2."""
    import shutil
    import subprocess
    confdir = sm_workspace.new_dir("a2enmod-" + module)
    shutil.copytree("/etc/apache2/mods-available", os.path.join(confdir, "mods-available"))
    os.mkdir(os.path.join(confdir, "mods-enabled"))
    for suffix in (".load", ".conf"):
        shutil.copy(os.path.join(os.environ["SM_TOP_SRCDIR"], "httpd-conf", module + suffix),
                    os.path.join(confdir, "mods-available"))
    result = subprocess.run(["a2enmod", "-q", module], capture_output=True, text=True,
                            env=dict(os.environ, APACHE_CONFDIR=confdir), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    enabled = set(os.listdir(os.path.join(confdir, "mods-enabled")))
    assert {module + ".load", module + ".conf", "ssl.load", "ssl.conf",
            "socache_shmcb.load"} <= enabled, enabled
