-- mod_mediastore schema, version 3: each preview upload is stored under a
-- name of its own (<work_id>.preview-<16 hex digits>), recorded here in
-- the same transaction as its metadata, so the file served and the type
-- and digest recorded always belong together, also when two replacements
-- race or a COMMIT fails. Previews stored before keep their old name.
-- secmedia-migrate: min-module-version 3
ALTER TABLE works
    ADD COLUMN IF NOT EXISTS preview_file VARCHAR(100) CHARACTER SET ascii COLLATE ascii_bin NULL
        AFTER preview_uploaded_at;
UPDATE works SET preview_file = CONCAT(work_id, '.preview')
    WHERE preview_sha256 IS NOT NULL AND preview_file IS NULL;
