-- mod_retail schema, version 2: top-ups are rows of their own, bound to
-- the account and the request before the payment authority is called.
--
-- Before this version the reference sent to the payment authority was
-- "topup:<Idempotency-Key>": chosen by the client and not bound to the
-- account, so a processor answering a repeated reference with the first
-- outcome could approve another account's top-up without charging it.
-- Now a top-up is first inserted here, keyed by (account, Idempotency-Key),
-- with its amount, the SHA-256 of the request and a reference the server
-- draws at random (128 bits); the charge uses that reference and only this
-- row's amount is credited, to this account, once (state 'credited' with
-- the journal entry). docs/PROTOCOL.md §4.3, §4.6.
CREATE TABLE topups (
    account_id      BIGINT UNSIGNED NOT NULL,
    idempotency_key VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- SHA-256 of the request (points and payment token); NULL for a
    -- top-up credited before this version (only its amount is compared)
    request_sha256  BINARY(32) NULL,
    points          BIGINT NOT NULL,
    reference       VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    state           ENUM('pending', 'credited') NOT NULL,
    entry_id        BIGINT UNSIGNED NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (account_id, idempotency_key),
    UNIQUE KEY topups_by_reference (reference),
    CONSTRAINT topups_account FOREIGN KEY (account_id) REFERENCES accounts (account_id),
    CONSTRAINT topups_entry FOREIGN KEY (entry_id) REFERENCES wallet_journal (entry_id),
    CONSTRAINT topups_points CHECK (points > 0),
    CONSTRAINT topups_credited CHECK ((state = 'credited') = (entry_id IS NOT NULL))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Top-ups credited before this version: their key answers the first entry
-- as before (a repeat is not charged again under a new reference).
INSERT INTO topups (account_id, idempotency_key, request_sha256, points, reference, state,
                    entry_id, created_at)
SELECT account_id, SUBSTRING(reference, 7), NULL, amount, reference, 'credited', entry_id,
       created_at
FROM wallet_journal
WHERE kind = 'purchase' AND reference LIKE 'topup:%' AND amount > 0;
