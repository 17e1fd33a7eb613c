-- The catalog: assets (one per source file), segments (moments), ingest jobs and their files.
-- Portable SQL (SQLite and PostgreSQL): TEXT ids, BIGINT numbers, ISO-8601 TEXT times.

CREATE TABLE assets (
    id            TEXT PRIMARY KEY,
    content_hash  TEXT NOT NULL UNIQUE,
    path          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    mime          TEXT,
    bytes         BIGINT NOT NULL,
    mtime         BIGINT,
    duration_ms   BIGINT,
    width         BIGINT,
    height        BIGINT,
    captured_at   TEXT,
    ingested_at   TEXT NOT NULL,
    title         TEXT,
    caption       TEXT,
    keywords      TEXT NOT NULL DEFAULT '[]',
    credit        TEXT,
    camera        TEXT,
    gps_lat       DOUBLE PRECISION,
    gps_lon       DOUBLE PRECISION,
    collection    TEXT,
    language      TEXT,
    phash         BIGINT,
    status        TEXT NOT NULL,
    error         TEXT
);
CREATE INDEX assets_path ON assets (path);
CREATE INDEX assets_status ON assets (status);
CREATE INDEX assets_collection ON assets (collection);

CREATE TABLE segments (
    id          TEXT PRIMARY KEY,
    asset_id    TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    start_ms    BIGINT NOT NULL,
    end_ms      BIGINT NOT NULL,
    text        TEXT,
    thumbnail   TEXT
);
CREATE INDEX segments_asset ON segments (asset_id, start_ms);

-- Files that could not be turned into an asset at all (unreadable, vanished): kept so that a
-- job report names them.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    source       TEXT NOT NULL,
    status       TEXT NOT NULL,
    total        BIGINT NOT NULL DEFAULT 0,
    done         BIGINT NOT NULL DEFAULT 0,
    failed       BIGINT NOT NULL DEFAULT 0,
    skipped      BIGINT NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    finished_at  TEXT
);

CREATE TABLE job_files (
    job_id    TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    status    TEXT NOT NULL,
    asset_id  TEXT,
    error     TEXT,
    PRIMARY KEY (job_id, path)
);
