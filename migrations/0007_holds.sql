-- 0007_holds: an operator's holds on accounts (CONTRACT.md §7). While an
-- account is held, every worker answers its requests `account_held` and
-- applies nothing; the others are served as before.
--
-- The table is operator data, not tenant data: it is no tenant's to read,
-- and its column is `account`, not `account_id`, so that the tenant-table
-- rules (tally_tenant_table, it_rls, the worker's role check) leave it
-- alone. `tallyctl hold`, `release` and `holds` write and read it over the
-- operator's connection (MIGRATION_DATABASE_URL), as its owner.
CREATE TABLE tally_account_holds (
    account text PRIMARY KEY CHECK (account ~ '^[A-Za-z0-9_-]{1,64}$'),
    reason  text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    held_by text NOT NULL CHECK (length(held_by) BETWEEN 1 AND 200), -- as the operator said
    db_role text NOT NULL DEFAULT session_user,                       -- who connected
    held_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
REVOKE ALL ON tally_account_holds FROM PUBLIC;

-- Every change tells the workers at once: each LISTENs on tally_holds and
-- reads the holds again when told (and every few seconds anyway: a
-- notification can be lost with its connection). One notification per
-- statement, sent at commit.
CREATE FUNCTION tally_holds_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('tally_holds', '');
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION tally_holds_changed() FROM PUBLIC;
CREATE TRIGGER tally_account_holds_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tally_account_holds
    FOR EACH STATEMENT EXECUTE FUNCTION tally_holds_changed();

-- What the worker may know: which accounts are held, nothing else (not who
-- held them, nor why). It has no right on the table; this SECURITY DEFINER
-- function of the owner reads it for tally_app. LISTEN needs no right.
CREATE FUNCTION tally_held_accounts() RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT account FROM public.tally_account_holds ORDER BY account
$$;
REVOKE ALL ON FUNCTION tally_held_accounts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tally_held_accounts() TO tally_app;
