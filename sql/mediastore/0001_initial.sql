-- mod_mediastore schema, version 1.
-- Applied by secmedia-db-migrate (never by hand: it records the version).

-- One row per stored work. The container itself is a file in
-- MediaStoreStorageDir named after work_id; this row is its ownership and
-- integrity record. A row exists only once the file was renamed into place.
CREATE TABLE works (
    work_id        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    owner_dn       VARCHAR(1024) NOT NULL,
    size           BIGINT UNSIGNED NOT NULL,
    sha256         BINARY(32) NOT NULL,
    uploaded_at    BIGINT NOT NULL,          -- Unix seconds
    preview_size   BIGINT UNSIGNED NULL,
    preview_sha256 BINARY(32) NULL,
    preview_type   VARCHAR(127) CHARACTER SET ascii COLLATE ascii_bin NULL,
    preview_uploaded_at BIGINT NULL,
    PRIMARY KEY (work_id),
    KEY works_by_owner (owner_dn(255), work_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Delivery-complete events: the last byte of a work went out for a
-- transaction. Kept until the key server acknowledged them; the sender
-- claims due rows with a lease so that several httpd children (or nodes)
-- never send the same row at the same time.
CREATE TABLE delivery_events (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    txn             VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    work_id         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    delivered_at    BIGINT NOT NULL,          -- Unix seconds
    attempts        INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,          -- Unix seconds
    lease_owner     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    acked_at        BIGINT NULL,
    last_error      VARCHAR(255) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY delivery_events_once (txn, work_id),
    KEY delivery_events_due (acked_at, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
