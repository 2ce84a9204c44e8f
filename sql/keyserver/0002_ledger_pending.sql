-- mod_keyserver schema, version 2: queued ledger entries.
--
-- A license records its ledger entry here, in the same database
-- transaction as the license, without taking the ledger head lock (which
-- had serialised every license). A sealer (each httpd child, every few
-- milliseconds; also every synchronous append, checkpoint and export,
-- first) moves the queued entries in id order into `ledger`, assigning the
-- next gapless seq and hash under the head lock, and deletes them here in
-- the same transaction. docs/FORMATS.md §7.5.
CREATE TABLE ledger_pending (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    created_at BIGINT NOT NULL,
    type       VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    data       TEXT NOT NULL,
    txn        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
