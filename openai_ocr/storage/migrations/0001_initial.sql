-- The state of the Files and Batch API on PostgreSQL (openai_ocr/storage/postgres.py): the
-- same tables as the SQLite store, plus the leases of batch lines and of a batch's
-- finalization, which let every replica work on every batch.

CREATE TABLE files (
    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,  -- list order (newest first)
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    filename TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    state TEXT NOT NULL DEFAULT 'ready',  -- 'writing': its room reserved, its body being written
    writer TEXT,
    lease_until DOUBLE PRECISION
);
CREATE INDEX files_owner ON files (owner, seq);
CREATE INDEX files_writing ON files (id) WHERE state = 'writing';
CREATE INDEX files_expiring ON files (expires_at) WHERE state = 'ready';

CREATE TABLE batches (
    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    data JSONB NOT NULL,
    total INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    result_bytes BIGINT NOT NULL DEFAULT 0,
    finalizer TEXT,  -- the replica writing the output files, until finalize_until
    finalize_until TIMESTAMPTZ
);
CREATE INDEX batches_owner ON batches (owner, seq);
CREATE INDEX batches_unfinished ON batches (id) WHERE finished_at IS NULL;
CREATE INDEX batches_input ON batches ((data ->> 'input_file_id')) WHERE finished_at IS NULL;

CREATE TABLE lines (
    batch_id TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    byte_offset BIGINT NOT NULL,
    length INTEGER NOT NULL,
    status_code INTEGER,
    result TEXT,
    leased_by TEXT,  -- the replica running it, until lease_until (the database's clock)
    lease_until TIMESTAMPTZ,
    answered_by TEXT,  -- the replica whose answer was recorded
    PRIMARY KEY (batch_id, idx)
);
CREATE INDEX lines_pending ON lines (batch_id, idx) WHERE status_code IS NULL;

-- usage per API key: counters per UTC day, key id (a hash of the key), route and model
CREATE TABLE key_usage (
    day TEXT NOT NULL,
    key_id TEXT NOT NULL,
    route TEXT NOT NULL,
    model TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    pages BIGINT NOT NULL DEFAULT 0,
    images BIGINT NOT NULL DEFAULT 0,
    image_tokens BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    engine_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key_id, route, model)
);

-- the bytes of every file row (reservations included), kept by a trigger: the quota check
-- reads (and locks) one row instead of summing the table
CREATE TABLE quota_usage (id INTEGER PRIMARY KEY CHECK (id = 0), bytes BIGINT NOT NULL);
INSERT INTO quota_usage (id, bytes) VALUES (0, 0);

CREATE FUNCTION files_quota() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE quota_usage SET bytes = bytes + NEW.bytes WHERE id = 0;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE quota_usage SET bytes = bytes - OLD.bytes WHERE id = 0;
    ELSE
        UPDATE quota_usage SET bytes = bytes - OLD.bytes + NEW.bytes WHERE id = 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER files_quota AFTER INSERT OR DELETE OR UPDATE OF bytes ON files
    FOR EACH ROW EXECUTE FUNCTION files_quota();
