-- mod_mediastore schema, version 2: delivery-complete events the key
-- server refused for good (404 unknown-transaction, 409 work-mismatch) are
-- kept, marked, and no longer sent.
ALTER TABLE delivery_events
    ADD COLUMN rejected_at BIGINT NULL AFTER acked_at;
