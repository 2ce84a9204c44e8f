-- mod_retail schema, version 1.
-- Applied by secmedia-db-migrate (never by hand: it records the version).
--
-- Conventions as in the key server's schema: ids ASCII with binary
-- collation, times Unix seconds in BIGINT, money BIGINT points (one point
-- is one minor unit of RetailCurrency). Secrets (API tokens, redeem codes)
-- are stored as their SHA-256 only; passwords as a scrypt hash string.

-- Consumer accounts. email is stored lower-cased; balance is the wallet
-- (never negative: the CHECK and the debit's FOR UPDATE both hold that).
CREATE TABLE accounts (
    account_id    BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    email         VARCHAR(254) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    display_name  VARCHAR(200) NULL,
    password_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    balance       BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id),
    UNIQUE KEY accounts_by_email (email),
    CONSTRAINT balance_not_negative CHECK (balance >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- API tokens (bearer): SHA-256 of the token, expiry, revocation.
CREATE TABLE api_tokens (
    token_sha256 BINARY(32) NOT NULL,
    account_id   BIGINT UNSIGNED NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT NULL,
    PRIMARY KEY (token_sha256),
    KEY tokens_by_account (account_id),
    CONSTRAINT tokens_account FOREIGN KEY (account_id) REFERENCES accounts (account_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Failed logins per scope ('account' = SHA-256 of the email, 'address' =
-- SHA-256 of the client address) in a fixed window.
CREATE TABLE login_failures (
    scope        ENUM('account', 'address') NOT NULL,
    subject      BINARY(32) NOT NULL,
    window_start BIGINT NOT NULL,
    failures     INT UNSIGNED NOT NULL,
    PRIMARY KEY (scope, subject)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Registered device public keys; a device belongs to one account.
CREATE TABLE devices (
    jkt        CHAR(43) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    account_id BIGINT UNSIGNED NOT NULL,
    name       VARCHAR(200) NULL,
    jwk        VARCHAR(1024) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (jkt),
    KEY devices_by_account (account_id),
    CONSTRAINT devices_account FOREIGN KEY (account_id) REFERENCES accounts (account_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Redeemable codes issued by the admin (SHA-256 of the code).
CREATE TABLE redeem_codes (
    code_sha256 BINARY(32) NOT NULL,
    points      BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NULL,
    redeemed_by BIGINT UNSIGNED NULL,
    redeemed_at BIGINT NULL,
    PRIMARY KEY (code_sha256),
    CONSTRAINT code_points_positive CHECK (points > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every wallet movement; balance_after is the balance once it applied.
CREATE TABLE wallet_journal (
    entry_id      BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    account_id    BIGINT UNSIGNED NOT NULL,
    kind          ENUM('redeem', 'purchase', 'order', 'refund') NOT NULL,
    amount        BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    order_id      CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NULL,
    reference     VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (entry_id),
    KEY journal_by_account (account_id, entry_id),
    -- at most one debit and one refund per order
    UNIQUE KEY journal_once_per_order (order_id, kind),
    -- a top-up is credited once per (account, reference)
    UNIQUE KEY journal_by_reference (account_id, reference),
    CONSTRAINT journal_account FOREIGN KEY (account_id) REFERENCES accounts (account_id),
    CONSTRAINT journal_balance CHECK (balance_after >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The catalog: works from the key server's inventory. available = 0 once
-- a sync no longer lists the work.
CREATE TABLE catalog_works (
    work_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    title       VARCHAR(500) NOT NULL,
    artist      VARCHAR(500) NOT NULL DEFAULT '',
    album       VARCHAR(500) NOT NULL DEFAULT '',
    artwork_ref VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NULL,
    media_type  VARCHAR(127) CHARACTER SET ascii COLLATE ascii_bin NULL,
    owner_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    available   TINYINT NOT NULL DEFAULT 1,
    synced_at   BIGINT NOT NULL,
    PRIMARY KEY (work_id),
    FULLTEXT KEY catalog_text (title, artist, album)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Wholesale terms per work and contract (replaced on every sync).
CREATE TABLE wholesale_terms (
    work_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    contract_id  BIGINT UNSIGNED NOT NULL,
    license_type ENUM('purchase', 'rental') NOT NULL,
    duration     BIGINT NOT NULL,
    price        BIGINT NOT NULL,
    currency     CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    valid_until  BIGINT NOT NULL,
    PRIMARY KEY (work_id, contract_id, license_type, duration)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Retail offers set by the admin.
CREATE TABLE offers (
    offer_id     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    work_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    license_type ENUM('purchase', 'rental') NOT NULL,
    duration     BIGINT NOT NULL,
    price        BIGINT NOT NULL,
    valid_from   BIGINT NOT NULL,
    valid_until  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (offer_id),
    KEY offers_by_work (work_id),
    CONSTRAINT offers_work FOREIGN KEY (work_id) REFERENCES catalog_works (work_id),
    CONSTRAINT offer_price CHECK (price >= 0),
    CONSTRAINT offer_window CHECK (valid_from < valid_until)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Orders and their state machine (docs/PROTOCOL.md §4.7):
-- pending -> debited (reserved at the key server and debited, one commit)
-- -> completed, or failed (nothing debited) or refunded (debited, then the
-- key server refused the payment for good).
CREATE TABLE orders (
    order_id        CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    account_id      BIGINT UNSIGNED NOT NULL,
    idempotency_key VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    request_sha256  BINARY(32) NOT NULL,
    state           ENUM('pending', 'debited', 'completed', 'failed', 'refunded') NOT NULL,
    offer_id        BIGINT UNSIGNED NOT NULL,
    work_id         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    license_type    ENUM('purchase', 'rental') NOT NULL,
    duration        BIGINT NOT NULL,
    price           BIGINT NOT NULL,
    device_jkt      CHAR(43) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    gift            TINYINT NOT NULL,
    txn             VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    voucher         TEXT CHARACTER SET ascii COLLATE ascii_bin NULL,
    wholesale_price BIGINT NULL,
    currency        CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NULL,
    payment_token   TEXT CHARACTER SET ascii COLLATE ascii_bin NULL,
    steer           MEDIUMTEXT NULL,
    problem         TEXT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    completed_at    BIGINT NULL,
    PRIMARY KEY (order_id),
    UNIQUE KEY orders_by_key (account_id, idempotency_key),
    KEY orders_by_account (account_id, created_at),
    KEY orders_by_state (state, updated_at),
    CONSTRAINT orders_account FOREIGN KEY (account_id) REFERENCES accounts (account_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row: the catalog sync lease (only one child or node syncs at once).
CREATE TABLE catalog_sync (
    id           TINYINT NOT NULL,
    lease_until  BIGINT NOT NULL,
    last_sync_at BIGINT NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO catalog_sync (id, lease_until) VALUES (1, 0);
