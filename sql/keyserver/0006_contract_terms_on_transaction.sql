-- mod_keyserver schema, version 6: whether the contract still offers a
-- sale's terms is kept on the transaction's row.
--
-- Every license asked "does the contract under which this sale was made
-- still offer its terms?" by joining contracts and contract_offers into
-- its locking read (license_facts). That nested outer join was the most
-- expensive part of a license in the database (docs/PERFORMANCE.md): two
-- more tables to open, lock and plan on every license, for an answer that
-- changes only when an owner revokes a contract or an offer is removed.
-- Now the answer is a column of the transaction, terms_offered, kept by
-- triggers in the statement that changes a contract or an offer, like paid
-- and revoked (version 4).
--
-- Why it stays exact: a contract or offer change updates the rows of its
-- transactions, which takes each row's lock; a license holds its
-- transaction row's lock from its first statement to COMMIT. So a
-- revocation either waits for a license in flight or is seen by it, as the
-- share locks of the old read ensured. A reservation share-locks the
-- contract and its offer while it inserts the transaction, so a revocation
-- waits for it and then updates the new row too; a reservation is only
-- made under an active contract offering its terms, hence the default 1.

SET SESSION lock_wait_timeout = 30;

-- Every step can run again (see version 4).
ALTER TABLE transactions
    ADD COLUMN IF NOT EXISTS terms_offered TINYINT UNSIGNED NOT NULL DEFAULT 1;

DELIMITER //

-- Triggers before the backfill: a change made while this runs is either
-- seen by the backfill or sets the column itself.
CREATE OR REPLACE TRIGGER transactions_contract_revoked AFTER UPDATE ON contracts
FOR EACH ROW
BEGIN
    IF NOT (OLD.revoked_at <=> NEW.revoked_at) THEN
        UPDATE transactions t
           SET t.terms_offered = NEW.revoked_at IS NULL AND EXISTS (
                   SELECT 1 FROM contract_offers o
                    WHERE o.contract_id = t.contract_id
                      AND o.license_type = t.license_type AND o.duration = t.duration)
         WHERE t.contract_id = NEW.contract_id;
    END IF;
END //

CREATE OR REPLACE TRIGGER transactions_offer_removed AFTER DELETE ON contract_offers
FOR EACH ROW
    UPDATE transactions SET terms_offered = 0
     WHERE contract_id = OLD.contract_id AND license_type = OLD.license_type
       AND duration = OLD.duration //

CREATE OR REPLACE TRIGGER transactions_offer_added AFTER INSERT ON contract_offers
FOR EACH ROW
    UPDATE transactions t JOIN contracts k ON k.contract_id = t.contract_id
       SET t.terms_offered = k.revoked_at IS NULL
     WHERE t.contract_id = NEW.contract_id AND t.license_type = NEW.license_type
       AND t.duration = NEW.duration //

-- An offer changed in place: the transactions of its old terms lose it,
-- those of its new terms gain it (unless the contract is revoked).
CREATE OR REPLACE TRIGGER transactions_offer_changed AFTER UPDATE ON contract_offers
FOR EACH ROW
BEGIN
    UPDATE transactions SET terms_offered = 0
     WHERE contract_id = OLD.contract_id AND license_type = OLD.license_type
       AND duration = OLD.duration;
    UPDATE transactions t JOIN contracts k ON k.contract_id = t.contract_id
       SET t.terms_offered = k.revoked_at IS NULL
     WHERE t.contract_id = NEW.contract_id AND t.license_type = NEW.license_type
       AND t.duration = NEW.duration;
END //

DELIMITER ;

-- Driven from the (few) revoked contracts and from the transactions whose
-- offer is gone: only those rows are locked.
UPDATE transactions t JOIN contracts k ON k.contract_id = t.contract_id
   SET t.terms_offered = 0
 WHERE k.revoked_at IS NOT NULL;
UPDATE transactions t LEFT JOIN contract_offers o
       ON o.contract_id = t.contract_id AND o.license_type = t.license_type
      AND o.duration = t.duration
   SET t.terms_offered = 0
 WHERE o.contract_id IS NULL;

DELIMITER //

-- license_facts of version 4 reading terms_offered instead of joining the
-- contract and its offers; the joins left are flat (a nested outer join
-- costs the optimizer more on every call). Same result columns.
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
           t.terms_offered, dj.jti IS NOT NULL
      FROM transactions t
      JOIN works w ON w.work_id = t.work_id
      LEFT JOIN revocations rd ON rd.kind = 'device' AND rd.subject = t.jkt
      LEFT JOIN dpop_jtis dj ON dj.jkt = p_jkt AND dj.jti = p_jti
     WHERE t.txn = p_txn AND counted = 1
      LOCK IN SHARE MODE;
END //

DELIMITER ;
