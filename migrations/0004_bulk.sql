-- Bulk ingest: a job keeps the whole request that started it (paths and options, JSON) so that it
-- resumes as it was asked; its runner beats a heartbeat, so that a job whose process was killed
-- reads as interrupted rather than running; a cancel request is a flag the runner polls, so that
-- any process (the CLI, the server) can stop a job that another one runs.
ALTER TABLE jobs ADD COLUMN spec TEXT;
ALTER TABLE jobs ADD COLUMN runner_pid BIGINT;
ALTER TABLE jobs ADD COLUMN heartbeat_at TEXT;
ALTER TABLE jobs ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0;
