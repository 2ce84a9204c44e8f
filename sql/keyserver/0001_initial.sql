-- mod_keyserver schema, version 1.
-- Applied by secmedia-db-migrate (never by hand: it records the version).
--
-- Conventions: ids are ASCII with binary collation (compared byte for byte,
-- as the library validates them); times are Unix seconds in BIGINT; money is
-- BIGINT minor units with an ISO 4217 code next to it. Client-certificate
-- subject DNs are stored with their SHA-256, which carries the unique index
-- (a utf8mb4 VARCHAR(1024) is too long for one).

-- Rights owners, registered by an admin; identified by their certificate.
CREATE TABLE owners (
    owner_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name        VARCHAR(200) NOT NULL,
    subject_dn  VARCHAR(1024) NOT NULL,
    dn_sha256   BINARY(32) NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (owner_id),
    UNIQUE KEY owners_by_dn (dn_sha256)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Retailers, registered by an admin. license_proxy_url: the URL of the
-- retailer's license proxy, accepted as a device proof's htu when the
-- retailer forwards a license request with its own certificate.
CREATE TABLE retailers (
    retailer_id       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name              VARCHAR(200) NOT NULL,
    subject_dn        VARCHAR(1024) NOT NULL,
    dn_sha256         BINARY(32) NOT NULL,
    license_proxy_url VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (retailer_id),
    UNIQUE KEY retailers_by_dn (dn_sha256)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Works with their metadata and the media key wrapped under the KEK
-- (docs/FORMATS.md §5.2: the wrap binds work_id, key_version, kek_version).
CREATE TABLE works (
    work_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    owner_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    title        VARCHAR(500) NOT NULL,
    artist       VARCHAR(500) NULL,
    album        VARCHAR(500) NULL,
    lyrics       MEDIUMTEXT NULL,
    liner_notes  MEDIUMTEXT NULL,
    credits      TEXT NULL,
    artwork_ref  VARCHAR(2048) NULL,
    media_type   VARCHAR(127) CHARACTER SET ascii COLLATE ascii_bin NULL,
    key_version  INT UNSIGNED NOT NULL,
    kek_version  INT UNSIGNED NOT NULL,
    wrapped_key  BINARY(61) NOT NULL,
    created_at   BIGINT NOT NULL,
    withdrawn_at BIGINT NULL,
    PRIMARY KEY (work_id),
    KEY works_by_owner (owner_id, work_id),
    KEY works_by_kek_version (kek_version),
    CONSTRAINT works_owner FOREIGN KEY (owner_id) REFERENCES owners (owner_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Owner -> retailer contracts (flow 2).
CREATE TABLE contracts (
    contract_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    owner_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    retailer_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    currency    CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    valid_from  BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT NULL,
    PRIMARY KEY (contract_id),
    KEY contracts_by_retailer (retailer_id, valid_until),
    KEY contracts_by_owner (owner_id, contract_id),
    CONSTRAINT contracts_owner FOREIGN KEY (owner_id) REFERENCES owners (owner_id),
    CONSTRAINT contracts_retailer FOREIGN KEY (retailer_id) REFERENCES retailers (retailer_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE contract_works (
    contract_id BIGINT UNSIGNED NOT NULL,
    work_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    PRIMARY KEY (contract_id, work_id),
    KEY contract_works_by_work (work_id, contract_id),
    CONSTRAINT contract_works_contract FOREIGN KEY (contract_id) REFERENCES contracts (contract_id),
    CONSTRAINT contract_works_work FOREIGN KEY (work_id) REFERENCES works (work_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- License offers of a contract: purchase (duration 0) or rental of
-- `duration` seconds, each with its wholesale price.
CREATE TABLE contract_offers (
    contract_id  BIGINT UNSIGNED NOT NULL,
    license_type ENUM('purchase', 'rental') NOT NULL,
    duration     INT UNSIGNED NOT NULL,
    price        BIGINT NOT NULL,
    PRIMARY KEY (contract_id, license_type, duration),
    CONSTRAINT contract_offers_contract FOREIGN KEY (contract_id) REFERENCES contracts (contract_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Royalty split: shares in basis points, 10000 in total per contract.
CREATE TABLE contract_royalties (
    contract_id BIGINT UNSIGNED NOT NULL,
    position    SMALLINT UNSIGNED NOT NULL,
    holder      VARCHAR(200) NOT NULL,
    share_bps   SMALLINT UNSIGNED NOT NULL,
    PRIMARY KEY (contract_id, position),
    CONSTRAINT contract_royalties_contract FOREIGN KEY (contract_id) REFERENCES contracts (contract_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Transactions: made by a reservation, bound to one device (jkt).
-- reservation_ref is the retailer's idempotency key for the reservation.
CREATE TABLE transactions (
    txn               VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    retailer_id       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    reservation_ref   VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    work_id           VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    contract_id       BIGINT UNSIGNED NOT NULL,
    license_type      ENUM('purchase', 'rental') NOT NULL,
    duration          INT UNSIGNED NOT NULL,
    price             BIGINT NOT NULL,
    currency          CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    jkt               CHAR(43) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    voucher           TEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    reserved_at       BIGINT NOT NULL,
    pay_by            BIGINT NOT NULL,
    rental_started_at BIGINT NULL,
    activations       INT UNSIGNED NOT NULL DEFAULT 0,
    PRIMARY KEY (txn),
    UNIQUE KEY transactions_by_ref (retailer_id, reservation_ref),
    KEY transactions_by_work (work_id),
    KEY transactions_by_jkt (jkt),
    KEY transactions_by_contract (contract_id),
    CONSTRAINT transactions_retailer FOREIGN KEY (retailer_id) REFERENCES retailers (retailer_id),
    CONSTRAINT transactions_work FOREIGN KEY (work_id) REFERENCES works (work_id),
    CONSTRAINT transactions_contract FOREIGN KEY (contract_id) REFERENCES contracts (contract_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One payment per transaction; payment_ref is the retailer's idempotency
-- key: the same request again gets the stored acknowledgement back.
CREATE TABLE payments (
    txn         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    retailer_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    payment_ref VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    amount      BIGINT NOT NULL,
    currency    CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    paid_at     BIGINT NOT NULL,
    ack         TEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    PRIMARY KEY (txn),
    UNIQUE KEY payments_by_ref (retailer_id, payment_ref),
    CONSTRAINT payments_txn FOREIGN KEY (txn) REFERENCES transactions (txn)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Licenses issued (activations).
CREATE TABLE licenses (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    txn          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    jkt          CHAR(43) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    issued_at    BIGINT NOT NULL,
    proof_jti    VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    delivery_jti VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    via_retailer VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    PRIMARY KEY (id),
    KEY licenses_by_txn (txn, issued_at),
    CONSTRAINT licenses_txn FOREIGN KEY (txn) REFERENCES transactions (txn)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Device proofs seen: replay protection is this table's primary key (an
-- atomic unique INSERT, never read-then-write). Rows older than the proof
-- window are purged.
CREATE TABLE dpop_jtis (
    jkt     CHAR(43) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    jti     VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (jkt, jti),
    KEY dpop_jtis_by_time (seen_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Revocations of a transaction (refund, fraud) or of a device (lost,
-- compromised key). subject: the txn or the jkt.
CREATE TABLE revocations (
    kind       ENUM('transaction', 'device') NOT NULL,
    subject    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    reason     VARCHAR(500) NOT NULL,
    revoked_by VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    revoked_at BIGINT NOT NULL,
    PRIMARY KEY (kind, subject)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Delivery-complete reports from media stores (idempotent per txn+work).
CREATE TABLE deliveries (
    txn          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    work_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    delivered_at BIGINT NOT NULL,
    reported_at  BIGINT NOT NULL,
    PRIMARY KEY (txn, work_id),
    CONSTRAINT deliveries_txn FOREIGN KEY (txn) REFERENCES transactions (txn)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The ledger (docs/FORMATS.md §7): seq is assigned under the lock on the
-- single ledger_head row, in the same transaction as the event it records,
-- so the sequence has no gaps and the chain no forks.
CREATE TABLE ledger (
    seq        BIGINT UNSIGNED NOT NULL,
    created_at BIGINT NOT NULL,
    type       VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    data       TEXT NOT NULL,
    hash       BINARY(32) NOT NULL,
    txn        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    PRIMARY KEY (seq),
    KEY ledger_by_txn (txn, seq),
    KEY ledger_by_time (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE ledger_head (
    id   TINYINT UNSIGNED NOT NULL,
    seq  BIGINT UNSIGNED NOT NULL,
    hash BINARY(32) NOT NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO ledger_head (id, seq, hash) VALUES (1, 0, REPEAT(CHAR(0), 32));

-- Signed checkpoints over (seq, head hash).
CREATE TABLE ledger_checkpoints (
    seq        BIGINT UNSIGNED NOT NULL,
    token      TEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
