"""Shared set-up for the media store tests: a migrated database, a storage
dir the httpd children can write, the password file, and the module's
configuration in the test's HTTPS vhost."""

import os
import pwd
import shutil

import harness

TOKEN_ISSUER = "https://keyserver.test"
TOKEN_AUDIENCE = "mediastore-test-1"


def _www_data_ids():
    try:
        user = pwd.getpwnam("www-data")
        return user.pw_uid, user.pw_gid
    except KeyError:
        return None


def make_storage_dir(env):
    path = os.path.join(env.httpd.directory, "storage")
    os.makedirs(path, exist_ok=True)
    ids = _www_data_ids()
    if os.geteuid() == 0 and ids:
        os.chown(path, *ids)
        os.chmod(path, 0o750)
    else:
        os.chmod(path, 0o777)
    return path


def write_password_file(env, database):
    path = os.path.join(env.httpd.conf_dir, "mediastore-db.password")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(database.password + "\n")
    return path


class MediaStore:
    """The module configured in env.httpd (not started)."""

    def __init__(self, env, keyserver_url="https://127.0.0.1:9/ks",
                 jwks_url="https://127.0.0.1:9/jwks", extra=""):
        self.env = env
        self.db = env.migrated_database("mediastore")
        self.storage = make_storage_dir(env)
        self.password_file = write_password_file(env, self.db)
        pki = env.pki
        owner = pki.client("owner")
        ms = pki.client("mediastore")
        env.load_project_module("mod_mediastore")
        self.base_config = f"""
MediaStoreStorageDir "{self.storage}"
MediaStoreDBSocket "{self.db.socket}"
MediaStoreDBUser {self.db.user}
MediaStoreDBPasswordFile "{self.password_file}"
MediaStoreDBName {self.db.name}
MediaStoreDBPoolSize 4
MediaStoreClientRole owner "{owner.subject_dn}"
MediaStoreKeyServerURL {keyserver_url}
MediaStoreKeyServerJWKSURL {jwks_url}
MediaStoreKeyServerCAFile "{pki.ca_cert}"
MediaStoreClientCertFile "{ms.cert}"
MediaStoreClientKeyFile "{ms.key}"
MediaStoreTokenIssuer {TOKEN_ISSUER}
MediaStoreTokenAudience {TOKEN_AUDIENCE}
{extra}
<Location />
    SetHandler secmedia-mediastore
    Require all granted
</Location>
"""
        env.httpd.add_vhost_config(self.base_config)

    def query(self, sql):
        return self.env.db.query(sql, self.db.name)

    def file_path(self, work_id, preview=False):
        return os.path.join(self.storage, work_id + (".preview" if preview else ".smc"))

    def storage_listing(self):
        return sorted(os.listdir(self.storage))


def copy_sql_dir(env, dest):
    shutil.copytree(env.sql_dir, dest)
    return dest
