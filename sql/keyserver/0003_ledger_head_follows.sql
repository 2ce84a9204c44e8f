-- mod_keyserver schema, version 3: the ledger head row follows the ledger.
--
-- Every ledger append holds the lock of the single ledger_head row from its
-- locking read to COMMIT, so appends (a reservation's, a payment's) wait
-- for each other, and each round trip under that lock costs every waiting
-- sale. The head used to be written by a statement of its own after the
-- entry's INSERT; this trigger writes it inside the INSERT instead (one
-- round trip less under the lock; docs/PERFORMANCE.md). Rows are always
-- inserted in seq order under the head lock, so the head ends at the last
-- one. The trigger runs with the privileges of the account that ran this
-- migration (its DEFINER): keep that account, with UPDATE on ledger_head
-- (docs/CONFIGURATION.md §1.2).
CREATE TRIGGER ledger_head_follows AFTER INSERT ON ledger FOR EACH ROW
    UPDATE ledger_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
