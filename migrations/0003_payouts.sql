-- 0003_payouts: payment settings, payout routes and payouts, and the payouts'
-- side of account_balances (0002_payments.sql). Every table is a tenant table
-- (tally_tenant_table from 0001_core.sql).

-- Payment settings (settings.*): at most one row per account, written by the
-- first settings.update. An account without a row has the defaults, which
-- live in one place, the access layer (access/settings.h).
CREATE TABLE account_payment_settings (
    account_id           text NOT NULL,
    default_currency     text NOT NULL CHECK (default_currency ~ '^[a-z]{3}$'),
    payout_schedule      text NOT NULL
                         CHECK (payout_schedule IN ('manual', 'daily', 'weekly', 'monthly')),
    min_payout_amount    bigint NOT NULL CHECK (min_payout_amount BETWEEN 1 AND 1000000000000000),
    -- Like Stripe's: 5–22 printable ASCII characters, at least one letter,
    -- none of < > \ ' " *.
    statement_descriptor text CONSTRAINT account_payment_settings_descriptor
                         CHECK (statement_descriptor ~ '^[ -~]{5,22}$'
                                AND statement_descriptor ~ '[A-Za-z]'
                                AND statement_descriptor !~ '[<>\\''"*]'),
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id)
);
SELECT tally_tenant_table('account_payment_settings',
    'SELECT, INSERT, UPDATE (default_currency, payout_schedule, min_payout_amount,'
    ' statement_descriptor, updated_at)');

-- Payout routes (route.*): where payouts go. A deleted route keeps its row
-- (deleted_at), so the payouts that went through it still name a real route;
-- every job type treats it as missing. At most one live default per account:
-- the partial unique index is the last wall behind the access layer, which
-- demotes the previous default in the statement that sets the new one, under
-- a per-account advisory lock.
CREATE TABLE account_payout_routes (
    account_id  text NOT NULL,
    id          text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('stripe_connect', 'bank_account')),
    destination text NOT NULL CHECK (char_length(destination) BETWEEN 1 AND 255),
    currency    text CHECK (currency ~ '^[a-z]{3}$'),
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    deleted_at  timestamptz,
    PRIMARY KEY (account_id, id),
    CONSTRAINT account_payout_routes_deleted_not_default
        CHECK (deleted_at IS NULL OR NOT is_default)
);
CREATE UNIQUE INDEX account_payout_routes_one_default
    ON account_payout_routes (account_id) WHERE is_default;
CREATE INDEX account_payout_routes_page
    ON account_payout_routes (account_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
SELECT tally_tenant_table('account_payout_routes',
    'SELECT, INSERT, UPDATE (kind, destination, currency, is_default, updated_at, deleted_at)');

-- Payouts (payout.*). A payout is created pending and moves once, to paid or
-- failed; only status and updated_at ever change.
CREATE TABLE pay_out (
    account_id  text NOT NULL,
    id          text NOT NULL,
    amount      bigint NOT NULL CHECK (amount BETWEEN 1 AND 1000000000000000),
    currency    text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    status      text NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
    route_id    text,
    description text CHECK (char_length(description) <= 1000),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, route_id) REFERENCES account_payout_routes (account_id, id)
);
CREATE INDEX pay_out_page ON pay_out (account_id, created_at DESC, id DESC);
CREATE INDEX pay_out_status_page ON pay_out (account_id, status, created_at DESC, id DESC);
-- route.delete looks for a route's pending payouts.
CREATE INDEX pay_out_route_pending ON pay_out (account_id, route_id) WHERE status = 'pending';
SELECT tally_tenant_table('pay_out', 'SELECT, INSERT, UPDATE (status, updated_at)');

-- A payout's effect on its account's balance in its currency, applied by one
-- trigger so that no code path can forget it (as payments do in 0002):
--   created (pending)  available −= a, pending_payouts += a, only WHERE available >= a
--   pending → paid     pending_payouts −= a, paid_out += a
--   pending → failed   pending_payouts −= a, available += a
-- The conditional UPDATE takes the balance row's lock and re-checks
-- available >= a on the newest version (READ COMMITTED), so concurrent
-- payouts queue on the row and can never take available below zero. A payout
-- beyond available raises check_violation on constraint pay_out_funds, which
-- the access layer answers insufficient_funds. Any other status change is
-- refused here as well (the last wall behind the access layer's rules).
CREATE FUNCTION tally_payouts_balance() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = public, pg_catalog
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'pending' THEN
            RAISE EXCEPTION 'a payout starts pending'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'pay_out_transition';
        END IF;
        UPDATE account_balances
           SET available = available - NEW.amount,
               pending_payouts = pending_payouts + NEW.amount,
               updated_at = clock_timestamp()
         WHERE account_id = NEW.account_id AND currency = NEW.currency
           AND available >= NEW.amount;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the payout exceeds the available balance'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'pay_out_funds';
        END IF;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        IF OLD.status <> 'pending' OR NEW.status NOT IN ('paid', 'failed') THEN
            RAISE EXCEPTION 'a payout moves from pending to paid or failed only'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'pay_out_transition';
        END IF;
        UPDATE account_balances
           SET pending_payouts = pending_payouts - NEW.amount,
               paid_out = paid_out + CASE WHEN NEW.status = 'paid' THEN NEW.amount ELSE 0 END,
               available = available + CASE WHEN NEW.status = 'failed' THEN NEW.amount ELSE 0 END,
               updated_at = clock_timestamp()
         WHERE account_id = NEW.account_id AND currency = NEW.currency;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the balance of a pending payout is missing'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'pay_out_balance';
        END IF;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION tally_payouts_balance() FROM PUBLIC;
CREATE TRIGGER pay_out_balance
    AFTER INSERT OR UPDATE OF status ON pay_out
    FOR EACH ROW EXECUTE FUNCTION tally_payouts_balance();
