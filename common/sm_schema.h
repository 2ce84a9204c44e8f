/* The database schema version each server module needs: the number of the
 * newest migration in sql/<role>/ (NNNN_description.sql). A module's pool
 * refuses a database whose schema_version is older (sm_db_config
 * min_schema_version), so an upgrade done before its migration fails
 * every database request with a message naming secmedia-db-migrate
 * instead of failing somewhere in the middle. tests/source/
 * check_schema_versions.py keeps these equal to the newest migrations: add
 * a migration, raise its number here in the same change. */
#ifndef SM_SCHEMA_H
#define SM_SCHEMA_H

#define SM_SCHEMA_KEYSERVER 6u
#define SM_SCHEMA_MEDIASTORE 3u
#define SM_SCHEMA_RETAIL 2u

#endif
