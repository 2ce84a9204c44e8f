-- mod_keyserver schema, version 5: sale events are queued ledger entries.
--
-- A reservation, a payment and a delivery report used to append to the
-- ledger under the lock of the single ledger_head row, held to COMMIT, so
-- every sale waited for every other (docs/PERFORMANCE.md). Now each writes
-- its entry to ledger_queue in its own transaction, as a license writes
-- its row to licenses, and sealers chain both queues (docs/FORMATS.md
-- §7.5).
--
-- One queue order for both queues: queue_order is drawn from one sequence
-- when the entry is written. An event that depends on another (a license
-- on its payment, a payment on its reservation) is written after the other
-- committed, so it draws a larger number; the sealer chains what is
-- committed in queue order, so a cause is always chained before its
-- effects. Numbers may have gaps (the sequence's cache after a restart,
-- rolled-back writes): they order, they do not count.

SET SESSION lock_wait_timeout = 30;

-- Every step can run again (see version 4).
CREATE SEQUENCE IF NOT EXISTS ledger_queue_order START WITH 1 INCREMENT BY 1 NOCYCLE;

-- Licenses still queued from before get order 0: ahead of everything
-- queued from now on (the sequence starts at 1), among themselves in id
-- order as before (the sealer orders by queue_order, then id).
--
-- Every insert draws its number explicitly (NEXT VALUE FOR in the
-- statement): MariaDB 10.11 can crash evaluating NEXT VALUE FOR as a
-- column DEFAULT in prepared statements under concurrent inserts.
ALTER TABLE licenses
    ADD COLUMN IF NOT EXISTS queue_order BIGINT UNSIGNED NOT NULL DEFAULT 0,
    ADD KEY IF NOT EXISTS licenses_queue (chained, queue_order, id),
    DROP KEY IF EXISTS licenses_unchained;

-- Queued entries of other events; `data` is the entry's data object as
-- stored in the ledger (compact JSON, members sorted); queue_order drawn
-- by the insert.
CREATE TABLE IF NOT EXISTS ledger_queue (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    queue_order BIGINT UNSIGNED NOT NULL,
    created_at  BIGINT NOT NULL,
    type        VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    data        TEXT NOT NULL,
    txn         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    chained     TINYINT UNSIGNED NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    KEY ledger_queue_unchained (chained, queue_order, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- license_grant of version 4, drawing the license's queue order.
DELIMITER //

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
                          work_id, activation, chained, queue_order)
    VALUES (p_txn, p_jkt, p_now, p_proof_jti, p_delivery_jti, p_via, p_work_id,
            p_activation, 0, NEXT VALUE FOR ledger_queue_order);
    COMMIT;
END //

DELIMITER ;
