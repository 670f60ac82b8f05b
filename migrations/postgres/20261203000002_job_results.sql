-- Result files of succeeded jobs (exports) live in the database, so every process sharing it
-- can serve `GET /api/jobs/{id}/result`. A file is stored in parts of 256 KiB by the worker
-- holding the job and read back one part at a time, so neither side holds a whole file in
-- memory; it is served once the job row is `succeeded` with `result_size` set. The parts go
-- with their job (retention cleanup).
CREATE TABLE job_results (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    part   BIGINT NOT NULL,
    bytes  BYTEA NOT NULL,
    PRIMARY KEY (job_id, part)
);
ALTER TABLE jobs ADD COLUMN result_size BIGINT;
-- Files written by earlier versions stayed on one process's disk and are not imported.
UPDATE jobs SET result_type = NULL, result_name = NULL WHERE result_path IS NOT NULL;
ALTER TABLE jobs DROP COLUMN result_path;
