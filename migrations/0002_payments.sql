-- 0002_payments: payments and their refunds, share tracking, and the
-- per-currency balances that payments (here) and payouts (later) maintain.
-- Every table is a tenant table (tally_tenant_table from 0001_core.sql).

-- Payments (payment.*). A payment is refunded in parts; it becomes 'refunded'
-- exactly when nothing is left to refund. allocated_at marks a payment whose
-- net amount was split by share.allocate (at most once).
CREATE TABLE stripe_payments (
    account_id      text NOT NULL,
    id              text NOT NULL,
    external_id     text NOT NULL CHECK (char_length(external_id) BETWEEN 1 AND 255),
    amount          bigint NOT NULL CHECK (amount BETWEEN 1 AND 1000000000000000),
    currency        text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    status          text NOT NULL
                    CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    amount_refunded bigint NOT NULL DEFAULT 0,
    description     text CHECK (char_length(description) <= 1000),
    -- json, not jsonb: metadata comes back with its keys in the order given.
    metadata        json NOT NULL DEFAULT '{}' CHECK (json_typeof(metadata) = 'object'),
    allocated_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, id),
    CONSTRAINT stripe_payments_external_id_key UNIQUE (account_id, external_id),
    -- The last wall behind the conditional UPDATE of payment.refund.
    CONSTRAINT stripe_payments_refund_bounds
        CHECK (amount_refunded >= 0 AND amount_refunded <= amount),
    CONSTRAINT stripe_payments_refunded_status
        CHECK ((status = 'refunded') = (amount_refunded = amount)
               AND (status IN ('succeeded', 'refunded') OR amount_refunded = 0)),
    CONSTRAINT stripe_payments_allocated_status
        CHECK (allocated_at IS NULL OR status IN ('succeeded', 'refunded'))
);
CREATE INDEX stripe_payments_page ON stripe_payments (account_id, created_at DESC, id DESC);
CREATE INDEX stripe_payments_status_page
    ON stripe_payments (account_id, status, created_at DESC, id DESC);
SELECT tally_tenant_table('stripe_payments',
    'SELECT, INSERT, UPDATE (status, amount_refunded, allocated_at, updated_at)');

CREATE TABLE stripe_payment_refunds (
    account_id text NOT NULL,
    id         text NOT NULL,
    payment_id text NOT NULL,
    amount     bigint NOT NULL CHECK (amount BETWEEN 1 AND 1000000000000000),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, payment_id) REFERENCES stripe_payments (account_id, id)
);
CREATE INDEX stripe_payment_refunds_payment ON stripe_payment_refunds (account_id, payment_id);
SELECT tally_tenant_table('stripe_payment_refunds', 'SELECT, INSERT');

-- Share tracking (share.*): one 'allocation' row per share when a payment is
-- allocated, and one 'reversal' row per share for each later refund (amounts
-- ≤ 0), so a payment's rows always sum to amount − amount_refunded.
CREATE TABLE payment_share_tracking (
    account_id   text NOT NULL,
    id           text NOT NULL,
    payment_id   text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('allocation', 'reversal')),
    refund_id    text,
    position     smallint NOT NULL CHECK (position BETWEEN 0 AND 49),
    party        text NOT NULL CHECK (char_length(party) BETWEEN 1 AND 64),
    basis_points integer NOT NULL CHECK (basis_points BETWEEN 1 AND 10000),
    amount       bigint NOT NULL,
    currency     text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, payment_id) REFERENCES stripe_payments (account_id, id),
    FOREIGN KEY (account_id, refund_id) REFERENCES stripe_payment_refunds (account_id, id),
    CHECK ((kind = 'allocation') = (refund_id IS NULL)),
    CHECK ((kind = 'allocation' AND amount >= 0) OR (kind = 'reversal' AND amount <= 0))
);
-- A payment is allocated once; a refund is reversed once.
CREATE UNIQUE INDEX payment_share_tracking_allocation_once
    ON payment_share_tracking (account_id, payment_id, position) WHERE kind = 'allocation';
CREATE UNIQUE INDEX payment_share_tracking_reversal_once
    ON payment_share_tracking (account_id, refund_id, position) WHERE kind = 'reversal';
CREATE INDEX payment_share_tracking_page
    ON payment_share_tracking (account_id, created_at DESC, id DESC);
CREATE INDEX payment_share_tracking_payment_page
    ON payment_share_tracking (account_id, payment_id, created_at DESC, id DESC);
CREATE INDEX payment_share_tracking_party_page
    ON payment_share_tracking (account_id, party, created_at DESC, id DESC);
SELECT tally_tenant_table('payment_share_tracking', 'SELECT, INSERT');

-- Balances per account and currency, maintained incrementally so that
-- balance.get and payout.create read one row:
--   available       = Σ net of succeeded/refunded payments − Σ pending and paid payouts
--   pending_payouts = Σ pending payouts,  paid_out = Σ paid payouts.
-- Payments move `available` through the trigger below. Payouts (a later
-- migration) move it with single conditional statements: create
-- available −= a, pending += a (WHERE available >= a); paid pending −= a,
-- paid_out += a; failed pending −= a, available += a. available may go below
-- zero only through a refund after a payout; a payout never makes it negative.
CREATE TABLE account_balances (
    account_id      text NOT NULL,
    currency        text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    available       bigint NOT NULL DEFAULT 0,
    pending_payouts bigint NOT NULL DEFAULT 0 CHECK (pending_payouts >= 0),
    paid_out        bigint NOT NULL DEFAULT 0 CHECK (paid_out >= 0),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, currency)
);
SELECT tally_tenant_table('account_balances',
    'SELECT, INSERT, UPDATE (available, pending_payouts, paid_out, updated_at)');

-- A payment's contribution to `available` is its net amount while it is
-- succeeded or refunded, else 0. One trigger applies every change of that
-- contribution (recorded as succeeded, pending → succeeded, each refund), so
-- no code path can forget it. It runs as the caller, under the caller's row
-- security, in the caller's transaction; the payment's row lock orders
-- concurrent changes of one payment.
CREATE FUNCTION tally_payments_balance() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = public, pg_catalog
AS $$
DECLARE
    before bigint := 0;
    after  bigint := 0;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IN ('succeeded', 'refunded') THEN
        before := OLD.amount - OLD.amount_refunded;
    END IF;
    IF NEW.status IN ('succeeded', 'refunded') THEN
        after := NEW.amount - NEW.amount_refunded;
    END IF;
    IF after <> before THEN
        INSERT INTO account_balances AS b (account_id, currency, available)
        VALUES (NEW.account_id, NEW.currency, after - before)
        ON CONFLICT (account_id, currency) DO UPDATE
            SET available = b.available + EXCLUDED.available, updated_at = clock_timestamp();
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION tally_payments_balance() FROM PUBLIC;
CREATE TRIGGER stripe_payments_balance
    AFTER INSERT OR UPDATE OF status, amount_refunded ON stripe_payments
    FOR EACH ROW EXECUTE FUNCTION tally_payments_balance();
