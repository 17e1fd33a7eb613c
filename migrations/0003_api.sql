-- API keys: the secret is never stored, only its SHA-256 (keys carry 244 random bits, so a plain
-- hash cannot be reversed by guessing).
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    hash          TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    revoked_at    TEXT
);
-- Listing and faceting assets by language and capture date.
CREATE INDEX assets_language ON assets (language);
CREATE INDEX assets_captured ON assets (captured_at);
CREATE INDEX job_files_status ON job_files (job_id, status);
-- Why a job stopped, when the archive itself failed (per-file errors live in job_files).
ALTER TABLE jobs ADD COLUMN error TEXT;
