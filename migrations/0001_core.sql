-- 0001_core: the worker's role, the tenant-table helper, time helpers, stored
-- request outcomes and the audit log. Applied by `tallyctl migrate` in one
-- transaction, as the role that owns the database (it owns every table).

-- The worker's rights live in a NOLOGIN role; operators GRANT tally_app TO the
-- worker's login role. Roles are cluster-wide: another database of the same
-- cluster may have created it already.
DO $$
DECLARE
    r pg_roles%ROWTYPE;
BEGIN
    SELECT * INTO r FROM pg_roles WHERE rolname = 'tally_app';
    IF NOT FOUND THEN
        CREATE ROLE tally_app NOLOGIN;
    ELSIF r.rolsuper OR r.rolbypassrls OR r.rolcanlogin THEN
        RAISE EXCEPTION 'role tally_app exists but is a superuser, has BYPASSRLS or can log in; '
                        'it must be a plain NOLOGIN role';
    END IF;
END
$$;

-- Nobody creates objects in public but the migrations' role; the worker only
-- uses what it was granted.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO tally_app;

-- Times cross the C boundary as epoch milliseconds.
CREATE FUNCTION tally_epoch_ms(t timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN floor(extract(epoch FROM t) * 1000)::bigint;

CREATE FUNCTION tally_from_epoch_ms(ms bigint) RETURNS timestamptz
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    RETURN 'epoch'::timestamptz + ms * interval '1 millisecond';

-- tally_tenant_table(table, privileges): makes a table a tenant table in one
-- line, for every migration that adds one:
--
--     SELECT tally_tenant_table('account_agents', 'SELECT, INSERT, UPDATE, DELETE');
--
-- It refuses a table whose account_id is missing or nullable, or whose
-- primary key, unique constraints or foreign keys leave account_id out (the
-- schema must stay distributable by account); adds the CHECK on account_id's
-- format; enables AND forces row-level security with the tenant policy on
-- current_setting('app.account_id', true) for reads and writes; and grants
-- tally_app exactly `privileges` (SELECT, INSERT, UPDATE, DELETE, optionally
-- with column lists), revoking anything else it had.
CREATE FUNCTION tally_tenant_table(tbl regclass, privileges text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = public, pg_catalog
AS $$
DECLARE
    acct smallint;
    bad text;
    priv_re constant text :=
        '^\s*(SELECT|INSERT|UPDATE|DELETE)(\s*\(\s*[a-z_][a-z0-9_]*(\s*,\s*[a-z_][a-z0-9_]*)*\s*\))?'
        '(\s*,\s*(SELECT|INSERT|UPDATE|DELETE)(\s*\(\s*[a-z_][a-z0-9_]*(\s*,\s*[a-z_][a-z0-9_]*)*\s*\))?)*\s*$';
BEGIN
    SELECT attnum INTO acct FROM pg_attribute
     WHERE attrelid = tbl AND attname = 'account_id' AND NOT attisdropped AND attnotnull;
    IF acct IS NULL THEN
        RAISE EXCEPTION 'tenant table %: needs a column account_id NOT NULL', tbl;
    END IF;

    SELECT string_agg(conname, ', ') INTO bad FROM pg_constraint
     WHERE conrelid = tbl AND contype IN ('p', 'u', 'f') AND NOT (acct = ANY (conkey));
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'tenant table %: account_id must be part of constraint(s) %', tbl, bad;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = tbl AND contype = 'p') THEN
        RAISE EXCEPTION 'tenant table %: needs a primary key (that includes account_id)', tbl;
    END IF;
    SELECT string_agg(ic.relname, ', ') INTO bad
      FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
     WHERE i.indrelid = tbl AND i.indisunique AND NOT (acct = ANY (i.indkey::smallint[]));
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'tenant table %: account_id must be part of unique index(es) %', tbl, bad;
    END IF;

    IF privileges IS NULL OR privileges !~* priv_re THEN
        RAISE EXCEPTION 'tenant table %: privileges must list SELECT, INSERT, UPDATE or DELETE, got %',
            tbl, coalesce(privileges, 'NULL');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = tbl AND conname = 'tally_account_id_format') THEN
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT tally_account_id_format '
                       'CHECK (account_id ~ ''^[A-Za-z0-9_-]{1,64}$'')', tbl);
    END IF;
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = tbl AND polname = 'tally_tenant') THEN
        EXECUTE format('DROP POLICY tally_tenant ON %s', tbl);
    END IF;
    EXECUTE format('CREATE POLICY tally_tenant ON %s '
                   'USING (account_id = current_setting(''app.account_id'', true)) '
                   'WITH CHECK (account_id = current_setting(''app.account_id'', true))', tbl);
    EXECUTE format('REVOKE ALL ON %s FROM PUBLIC, tally_app', tbl);
    EXECUTE format('GRANT %s ON %s TO tally_app', privileges, tbl);
END
$$;
REVOKE ALL ON FUNCTION tally_tenant_table(regclass, text) FROM PUBLIC;

-- Stored request outcomes: the memory behind "effectively once". A row
-- without a response is a claim held by an open transaction.
CREATE TABLE tally_request_outcomes (
    account_id     text NOT NULL,
    request_id     text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 128),
    type           text NOT NULL CHECK (length(type) BETWEEN 1 AND 128),
    payload_sha256 bytea NOT NULL CHECK (length(payload_sha256) = 32),
    response       text,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, request_id)
);
-- Pruning scans by age across accounts.
CREATE INDEX tally_request_outcomes_created_at ON tally_request_outcomes (created_at);
SELECT tally_tenant_table('tally_request_outcomes', 'SELECT, INSERT, UPDATE (response)');

-- The audit trail: one row per answered request. Append-only for the worker.
CREATE TABLE payment_system_logs (
    account_id  text NOT NULL,
    id          text NOT NULL,
    request_id  text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 128),
    type        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('ok', 'error')),
    error_code  text,
    replayed    boolean NOT NULL DEFAULT false,
    at          timestamptz NOT NULL,
    duration_ms double precision NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    worker      text NOT NULL DEFAULT '',
    partition   integer,
    "offset"    bigint,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, id),
    CHECK ((status = 'ok') = (error_code IS NULL))
);
CREATE INDEX payment_system_logs_page
    ON payment_system_logs (account_id, created_at DESC, id DESC);
CREATE INDEX payment_system_logs_type_page
    ON payment_system_logs (account_id, type, created_at DESC, id DESC);
SELECT tally_tenant_table('payment_system_logs', 'SELECT, INSERT');

-- Pruning expired outcomes must cross tenants, which the worker's policies
-- forbid. tally_prune_outcomes runs as the table owner (SECURITY DEFINER); the
-- owner gets its own permissive policies so that it sees the expired rows
-- under FORCE ROW LEVEL SECURITY. Policies combine per role: tally_app's view
-- stays the tenant policy alone. The function takes no account and returns
-- only a count, and refuses a retention below one day.
DO $$
BEGIN
    EXECUTE format('CREATE POLICY tally_owner_prune_select ON tally_request_outcomes '
                   'FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY tally_owner_prune_delete ON tally_request_outcomes '
                   'FOR DELETE TO %I USING (true)', current_user);
END
$$;

CREATE FUNCTION tally_prune_outcomes(days integer) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    IF days IS NULL OR days < 1 THEN
        RAISE EXCEPTION 'retention must be at least 1 day, got %', days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM public.tally_request_outcomes
     WHERE created_at < pg_catalog.clock_timestamp() - pg_catalog.make_interval(days => days);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION tally_prune_outcomes(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tally_prune_outcomes(integer) TO tally_app;
