-- agentos PostgreSQL schema: secrets. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- Sealed secrets: the nonce and ciphertext are opaque bytes (the store never sees plaintext).
-- Names compare bytewise (COLLATE "C"), as SQLite's BINARY collation does, so `secret_names`
-- lists in the same order whatever the database's locale.
CREATE TABLE secrets (
    owner TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (owner, name)
);

-- Keeps quota_usage exact: one item per secret, its bytes the name's UTF-8 bytes plus the nonce
-- and ciphertext, as SQLite's quota triggers count them.
CREATE FUNCTION secrets_quota() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM quota_add(NEW.owner, 'secrets', 1,
            octet_length(NEW.name) + octet_length(NEW.nonce) + octet_length(NEW.ciphertext));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM quota_add(OLD.owner, 'secrets', -1,
            -(octet_length(OLD.name) + octet_length(OLD.nonce) + octet_length(OLD.ciphertext)));
        PERFORM quota_add(NEW.owner, 'secrets', 1,
            octet_length(NEW.name) + octet_length(NEW.nonce) + octet_length(NEW.ciphertext));
    ELSE
        PERFORM quota_add(OLD.owner, 'secrets', -1,
            -(octet_length(OLD.name) + octet_length(OLD.nonce) + octet_length(OLD.ciphertext)));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER secrets_quota AFTER INSERT OR UPDATE OR DELETE ON secrets
    FOR EACH ROW EXECUTE FUNCTION secrets_quota();
