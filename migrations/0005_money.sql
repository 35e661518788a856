-- 0005_money: share reversals by running total (their sign rule and the wall
-- behind them), and what scheduled payouts (`tallyctl payouts due`) read:
-- a NOLOGIN role tally_scheduler that may only call two narrow functions.

-- ---- Share reversals ------------------------------------------------------
--
-- A refund of an allocated payment now appends, per party whose total
-- changes, the change that brings the total back to its largest-remainder
-- share of the new net amount (src/handlers/alloc.h). A change is usually
-- negative, but rounding may move one unit to a party (+1), and totals that
-- drifted under the old per-refund rule are corrected in full by the next
-- refund; so a reversal's sign is no longer fixed. It is never 0 any more
-- (no row where nothing changes): NOT VALID, because the old rule wrote a
-- row for every share, zeros included, and those rows stay as they are.
DO $$
DECLARE
    sign_check name;
    n integer;
BEGIN
    SELECT min(conname), count(*) INTO sign_check, n FROM pg_constraint
     WHERE conrelid = 'payment_share_tracking'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%reversal%amount <= 0%';
    IF n <> 1 THEN
        RAISE EXCEPTION 'payment_share_tracking: expected one sign CHECK from 0002, found %', n;
    END IF;
    EXECUTE format('ALTER TABLE payment_share_tracking DROP CONSTRAINT %I', sign_check);
END
$$;
ALTER TABLE payment_share_tracking ADD CONSTRAINT payment_share_tracking_amount_sign
    CHECK ((kind = 'allocation' AND amount >= 0) OR (kind = 'reversal' AND amount <> 0))
    NOT VALID;

-- The last wall behind the handler's arithmetic (CONTRACT.md §4: a payment's
-- allocations always sum exactly to its net amount): after every statement
-- that inserts share rows, each payment it touched must have rows summing to
-- amount − amount_refunded, and no party a negative total. The refund's
-- UPDATE of the payment comes first in the same transaction, so the net is
-- already the new one. Runs as the caller, under its row security.
CREATE FUNCTION tally_shares_balanced() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = public, pg_catalog
AS $$
DECLARE
    bad text;
BEGIN
    SELECT string_agg(DISTINCT p.id, ', ') INTO bad
      FROM (SELECT DISTINCT account_id, payment_id FROM inserted) i
      JOIN stripe_payments p ON p.account_id = i.account_id AND p.id = i.payment_id
     WHERE (SELECT sum(s.amount) FROM payment_share_tracking s
             WHERE s.account_id = i.account_id AND s.payment_id = i.payment_id)
           <> p.amount - p.amount_refunded
        OR EXISTS (SELECT 1 FROM payment_share_tracking s
                    WHERE s.account_id = i.account_id AND s.payment_id = i.payment_id
                    GROUP BY s.position HAVING sum(s.amount) < 0);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'share rows of payment(s) % no longer match the net amount', bad
            USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_share_tracking_balanced';
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION tally_shares_balanced() FROM PUBLIC;
CREATE TRIGGER payment_share_tracking_balanced
    AFTER INSERT ON payment_share_tracking
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION tally_shares_balanced();

-- ---- Scheduled payouts ----------------------------------------------------
--
-- `tallyctl payouts due --schedule S` finds, across accounts, what to pay out
-- and enqueues ordinary payout.create requests with the id
-- auto_<S>_<period>_<currency>, which the worker applies effectively once.
-- Finding them crosses tenants, which tally_app's policies forbid, so (like
-- tally_prune_outcomes in 0001) SECURITY DEFINER functions of the owner do
-- it, with the owner's own SELECT policies. tallyctl connects as a login
-- role granted tally_scheduler, which can call these two functions and
-- nothing else: no table, no other function.
DO $$
DECLARE
    r pg_roles%ROWTYPE;
BEGIN
    SELECT * INTO r FROM pg_roles WHERE rolname = 'tally_scheduler';
    IF NOT FOUND THEN
        CREATE ROLE tally_scheduler NOLOGIN;
    ELSIF r.rolsuper OR r.rolbypassrls OR r.rolcanlogin THEN
        RAISE EXCEPTION 'role tally_scheduler exists but is a superuser, has BYPASSRLS or can '
                        'log in; it must be a plain NOLOGIN role';
    END IF;
    EXECUTE format('CREATE POLICY tally_owner_payouts_due ON account_payment_settings '
                   'FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY tally_owner_payouts_due ON account_balances '
                   'FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY tally_owner_payouts_due ON account_payout_routes '
                   'FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY tally_owner_payouts_due ON pay_out '
                   'FOR SELECT TO %I USING (true)', current_user);
END
$$;
GRANT USAGE ON SCHEMA public TO tally_scheduler;

-- A scheduled payout's description is its request id, so that the period's
-- payout can be found after its stored outcome was pruned.
CREATE INDEX pay_out_scheduled ON pay_out (account_id, description)
    WHERE description LIKE 'auto\_%';

-- Every account on `schedule` with a balance, and what its period's request
-- carries:
--   * the period's request already has a stored ok outcome: its amount again,
--     so that sending it again is a replay (same id, same payload);
--   * it has another stored outcome, or none but the period's payout exists
--     (the outcome was pruned, TALLY_OUTCOME_RETENTION_DAYS): no row, since
--     sending it could only be refused or, after the pruning, pay twice;
--   * otherwise the whole available balance, when at least min_payout_amount.
-- routed: the account has a default route that takes the currency.
-- Refuses any schedule but daily, weekly, monthly and a period that does not
-- look like that schedule's (2026-12-02, 2026-W49, 2026-12). Not callable by
-- tally_scheduler: only through the two functions below.
CREATE FUNCTION tally_payouts_scan(schedule text, period text)
    RETURNS TABLE (account_id text, currency text, amount bigint, routed boolean)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF schedule IS NULL OR schedule NOT IN ('daily', 'weekly', 'monthly') THEN
        RAISE EXCEPTION 'schedule must be daily, weekly or monthly, got %',
            coalesce(schedule, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF period IS NULL OR period !~ (CASE schedule WHEN 'daily' THEN '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
                                                  WHEN 'weekly' THEN '^[0-9]{4}-W[0-9]{2}$'
                                                  ELSE '^[0-9]{4}-[0-9]{2}$' END) THEN
        RAISE EXCEPTION 'period % is not a % period', coalesce(period, 'NULL'), schedule
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH due AS (
        SELECT s.account_id, b.currency, b.available, s.min_payout_amount,
               'auto_' || schedule || '_' || period || '_' || b.currency AS request_id
          FROM public.account_payment_settings s
          JOIN public.account_balances b ON b.account_id = s.account_id
         WHERE s.payout_schedule = schedule)
    SELECT d.account_id, d.currency,
           CASE WHEN o.response IS NULL THEN d.available
                ELSE (o.response::json #>> '{result,payout,amount}')::bigint END,
           EXISTS (SELECT 1 FROM public.account_payout_routes r
                    WHERE r.account_id = d.account_id AND r.is_default AND r.deleted_at IS NULL
                      AND (r.currency IS NULL OR r.currency = d.currency))
      FROM due d
      LEFT JOIN public.tally_request_outcomes o
        ON o.account_id = d.account_id AND o.request_id = d.request_id
       AND o.response IS NOT NULL
     WHERE CASE WHEN o.response IS NOT NULL
                THEN o.type = 'payout.create' AND o.response::json ->> 'status' = 'ok'
                ELSE d.available >= d.min_payout_amount
                     AND NOT EXISTS (SELECT 1 FROM public.pay_out p
                                      WHERE p.account_id = d.account_id
                                        AND p.description LIKE 'auto\_%'
                                        AND p.description = d.request_id) END
     ORDER BY 1, 2;
END
$$;
REVOKE ALL ON FUNCTION tally_payouts_scan(text, text) FROM PUBLIC;

-- What to pay out: account, currency and amount, where the account's
-- default route takes the currency.
CREATE FUNCTION tally_payouts_due(schedule text, period text)
    RETURNS TABLE (account_id text, currency text, amount bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.account_id, s.currency, s.amount FROM public.tally_payouts_scan(schedule, period) s
     WHERE s.routed
$$;

-- What is due but has nowhere to go: no default route, or one that takes
-- another currency. tallyctl lists these and skips them.
CREATE FUNCTION tally_payouts_unrouted(schedule text, period text)
    RETURNS TABLE (account_id text, currency text, amount bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.account_id, s.currency, s.amount FROM public.tally_payouts_scan(schedule, period) s
     WHERE NOT s.routed
$$;
REVOKE ALL ON FUNCTION tally_payouts_due(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tally_payouts_unrouted(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tally_payouts_due(text, text) TO tally_scheduler;
GRANT EXECUTE ON FUNCTION tally_payouts_unrouted(text, text) TO tally_scheduler;
