-- agentos PostgreSQL schema: what every replica sharing this database must agree on. Applied
-- once, in file order, by src/store/postgres/migrations.rs.
--
-- The first replica to start records a check value for each shared key (a digest of the token
-- signing key, a canary sealed with the secrets key); a replica whose keys do not match refuses
-- to start, instead of issuing tokens the others reject or sealing secrets they cannot open.
CREATE TABLE cluster_settings (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL,
    recorded_at BIGINT NOT NULL
);
