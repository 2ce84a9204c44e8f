-- mod_keyserver schema, version 4: a license in two round trips.
--
-- A license was four statements, each a round trip between httpd and the
-- database (count the activation, read the facts joining eight tables,
-- insert the license, COMMIT). Here it becomes two procedure calls:
-- license_facts (count and read) and license_grant (insert and COMMIT), so
-- the transaction row is locked for two round trips instead of four. The
-- decision stays in the module (sm_ks_license_decide), between the calls.
--
-- The facts read joins six tables: a transaction's payment and its
-- revocation are kept on its own row (paid, revoked), set by triggers in
-- the same statement that records them. Payments and revocations take the
-- transaction row's lock first anyway, so the license's row lock orders
-- them exactly as the locking reads of those tables did.
--
-- The procedures and triggers run with the privileges of the account that
-- ran this migration (their DEFINER); the module's account needs EXECUTE
-- (docs/CONFIGURATION.md §1.2). Parameters are ascii_bin like the columns
-- they are compared with, so every lookup uses its index.
--
-- Every step can run again: a run that stopped half-way (e.g. for a
-- missing privilege) is finished by running the migration again.

-- Wait at most 30 s for the tables' metadata locks (not the server's
-- default of a year, queueing all traffic behind a long transaction).
SET SESSION lock_wait_timeout = 30;

ALTER TABLE transactions
    ADD COLUMN IF NOT EXISTS paid TINYINT UNSIGNED NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS revoked TINYINT UNSIGNED NOT NULL DEFAULT 0;

-- Triggers before the backfill: a payment recorded while this runs is
-- either seen by the backfill or sets the flag itself.
CREATE OR REPLACE TRIGGER transactions_paid AFTER INSERT ON payments FOR EACH ROW
    UPDATE transactions SET paid = 1 WHERE txn = NEW.txn;

CREATE OR REPLACE TRIGGER transactions_revoked AFTER INSERT ON revocations FOR EACH ROW
    UPDATE transactions SET revoked = 1 WHERE NEW.kind = 'transaction' AND txn = NEW.subject;

-- Driven from the (small) payments and revocations: only the rows of
-- paid or revoked transactions are locked, not the whole table.
UPDATE transactions t JOIN payments p ON p.txn = t.txn SET t.paid = 1;
UPDATE transactions t JOIN revocations r ON r.kind = 'transaction' AND r.subject = t.txn
    SET t.revoked = 1;

DELIMITER //

-- Counts the activation (which takes the transaction row's lock), then
-- returns one result set: the facts of docs/PROTOCOL.md §2.6, one row, or
-- none when there is no such transaction. A locking read: it sees the
-- current state, and a device revocation or a spent proof id that is
-- absent is gap-locked, so neither can appear before the license commits.
-- The work is share-locked: licenses of one work do not wait for each
-- other, a withdrawal waits for them. activations and rental_started_at
-- already count this license.
CREATE OR REPLACE PROCEDURE license_facts(
    IN p_txn VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_now BIGINT,
    IN p_jkt CHAR(43) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_jti VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin)
    MODIFIES SQL DATA
BEGIN
    DECLARE counted INT;
    UPDATE transactions SET activations = activations + 1,
           rental_started_at = COALESCE(rental_started_at, p_now)
     WHERE txn = p_txn;
    SET counted = ROW_COUNT();
    SELECT t.work_id, t.retailer_id, t.jkt, t.license_type, t.duration, t.contract_id,
           t.rental_started_at, t.activations,
           w.key_version, w.kek_version, w.wrapped_key, w.withdrawn_at,
           t.paid, t.revoked, rd.subject IS NOT NULL,
           o.contract_id IS NOT NULL, dj.jti IS NOT NULL
      FROM transactions t
      JOIN works w ON w.work_id = t.work_id
      LEFT JOIN revocations rd ON rd.kind = 'device' AND rd.subject = t.jkt
      LEFT JOIN (contracts k JOIN contract_offers o ON o.contract_id = k.contract_id)
             ON k.contract_id = t.contract_id AND k.revoked_at IS NULL
            AND o.license_type = t.license_type AND o.duration = t.duration
      LEFT JOIN dpop_jtis dj ON dj.jkt = p_jkt AND dj.jti = p_jti
     WHERE t.txn = p_txn AND counted = 1
      LOCK IN SHARE MODE;
END //

-- Records the granted license (its row is also its queued ledger entry,
-- docs/FORMATS.md §7.5) and commits the transaction license_facts began.
-- A duplicate (jkt, proof_jti) fails before the COMMIT: the caller rolls
-- back and answers proof-replayed.
CREATE OR REPLACE PROCEDURE license_grant(
    IN p_txn VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_jkt CHAR(43) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_now BIGINT,
    IN p_proof_jti VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_delivery_jti VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_via VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_work_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_activation INT UNSIGNED)
    MODIFIES SQL DATA
BEGIN
    INSERT INTO licenses (txn, jkt, issued_at, proof_jti, delivery_jti, via_retailer,
                          work_id, activation, chained)
    VALUES (p_txn, p_jkt, p_now, p_proof_jti, p_delivery_jti, p_via, p_work_id,
            p_activation, 0);
    COMMIT;
END //

DELIMITER ;
