-- 0005_money: share reversals by running total (their sign rule and the wall
-- behind them).

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
