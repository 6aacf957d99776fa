-- agentos PostgreSQL schema: files. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- A file is one row: its whole content, its size and SHA-256. Paths compare bytewise
-- (COLLATE "C"), as SQLite's BINARY collation does, so listing order and the prefix ranges
-- `fs_list` scans are the same whatever the database's locale. The files quota is counted from
-- this table (no trigger): `files_usage` lets the sum of an owner's sizes skip the contents.
CREATE TABLE files (
    owner TEXT COLLATE "C" NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    content BYTEA NOT NULL,
    PRIMARY KEY (owner, path)
);
CREATE INDEX files_usage ON files (owner, bytes);
-- Contents are kept uncompressed out of line, so reading a byte range fetches only the chunks
-- that hold it instead of decompressing the whole file.
ALTER TABLE files ALTER COLUMN content SET STORAGE EXTERNAL;
