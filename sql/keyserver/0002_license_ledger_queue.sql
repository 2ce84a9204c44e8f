-- mod_keyserver schema, version 2: license rows double as queued ledger
-- entries and as the record of their device proof.
--
-- A license no longer appends to the ledger under the lock of the single
-- ledger_head row (that lock serialised every license). Its row here, with
-- the work and the activation number, is its ledger entry until a sealer
-- chains it: in id order, with the next gapless seq and hash, under the
-- head lock, setting `chained` in the same transaction (docs/FORMATS.md
-- §7.5). Rows from before this version are in the ledger already.
--
-- A granted license's proof id is recorded by its row alone (unique with
-- the device's jkt), so it spends the proof without a dpop_jtis row;
-- refusals still record theirs in dpop_jtis. Single use is then: a proof id
-- in neither table (read with a locking read), made unique by whichever
-- key the request writes (docs/PROTOCOL.md §2.6).
ALTER TABLE licenses
    ADD COLUMN work_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    ADD COLUMN activation INT UNSIGNED NULL,
    ADD COLUMN chained TINYINT UNSIGNED NOT NULL DEFAULT 1,
    ADD KEY licenses_unchained (chained, id),
    ADD UNIQUE KEY licenses_by_proof (jkt, proof_jti);

ALTER TABLE licenses ALTER COLUMN chained SET DEFAULT 0;
