-- 0006_bounds: balance totals stay within ±(2^53 − 1), the integers any JSON
-- reader holds exactly (CONTRACT.md §3). A change that would take available,
-- pending_payouts or paid_out past the bound fails with check_violation on
-- account_balances_bounds, which the access layer answers `conflict` (field
-- amount) at once; nothing is retried.
--
-- Added NOT VALID, then validated: a database in which a total already
-- passed the bound (possible before this migration) still migrates, with a
-- warning. Such a row then takes only a change that brings it back within
-- the bound; a change that would overflow bigint on it fails with
-- numeric_value_out_of_range, answered `conflict` as well.
ALTER TABLE account_balances ADD CONSTRAINT account_balances_bounds
    CHECK (available BETWEEN -9007199254740991 AND 9007199254740991
           AND pending_payouts <= 9007199254740991
           AND paid_out <= 9007199254740991) NOT VALID;

DO $$
BEGIN
    ALTER TABLE account_balances VALIDATE CONSTRAINT account_balances_bounds;
EXCEPTION WHEN check_violation THEN
    RAISE WARNING 'account_balances: some totals are already beyond ±(2^53 − 1); they take '
                  'only changes that bring them back within it';
END
$$;
