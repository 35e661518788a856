-- 0004_codes_agents: purchase codes and their redemptions (code.*), and the
-- agents linked to an account (agent.*). Every table is a tenant table
-- (tally_tenant_table from 0001_core.sql).

-- Purchase codes. A code is redeemable while it is not revoked, not expired
-- and redeemed_count < max_redemptions; code.redeem checks all three and
-- counts the redemption in one conditional UPDATE, so concurrent redemptions
-- never pass the limit, and ppu_redemption_limit is the last wall behind it.
-- amount and currency are a pair: a code worth a fixed amount has both, a
-- code without a value (an entitlement) has neither.
CREATE TABLE ppu (
    account_id      text NOT NULL,
    id              text NOT NULL,
    code            text NOT NULL CHECK (code ~ '^[A-Z0-9-]{4,64}$'),
    amount          bigint CHECK (amount BETWEEN 1 AND 1000000000000000),
    currency        text CHECK (currency ~ '^[a-z]{3}$'),
    max_redemptions integer NOT NULL DEFAULT 1 CHECK (max_redemptions >= 1),
    redeemed_count  integer NOT NULL DEFAULT 0 CHECK (redeemed_count >= 0),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, id),
    CONSTRAINT ppu_code_key UNIQUE (account_id, code),
    CONSTRAINT ppu_redemption_limit CHECK (redeemed_count <= max_redemptions),
    CONSTRAINT ppu_amount_currency CHECK ((amount IS NULL) = (currency IS NULL))
);
CREATE INDEX ppu_page ON ppu (account_id, created_at DESC, id DESC);
SELECT tally_tenant_table('ppu', 'SELECT, INSERT, UPDATE (redeemed_count, revoked_at, updated_at)');

-- One row per successful redemption; append-only for the worker.
CREATE TABLE ppu_redemptions (
    account_id  text NOT NULL,
    id          text NOT NULL,
    code_id     text NOT NULL,
    redeemer    text CHECK (char_length(redeemer) BETWEEN 1 AND 128),
    redeemed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, code_id) REFERENCES ppu (account_id, id)
);
CREATE INDEX ppu_redemptions_code
    ON ppu_redemptions (account_id, code_id, redeemed_at DESC, id DESC);
SELECT tally_tenant_table('ppu_redemptions', 'SELECT, INSERT');

-- Agents linked to the account. agent_id is the caller's id of the agent,
-- unique in the account; id (ag_…) is the link's own id, the list cursor.
-- Linking again updates role and share in place (linked_at stays); unlinking
-- deletes the row, so a later link starts afresh with a new id.
CREATE TABLE account_agents (
    account_id         text NOT NULL,
    id                 text NOT NULL,
    agent_id           text NOT NULL CHECK (char_length(agent_id) BETWEEN 1 AND 64),
    role               text CHECK (char_length(role) BETWEEN 1 AND 64),
    share_basis_points integer NOT NULL DEFAULT 0 CHECK (share_basis_points BETWEEN 0 AND 10000),
    linked_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, id),
    CONSTRAINT account_agents_agent_id_key UNIQUE (account_id, agent_id)
);
CREATE INDEX account_agents_page ON account_agents (account_id, linked_at DESC, id DESC);
SELECT tally_tenant_table('account_agents',
    'SELECT, INSERT, UPDATE (role, share_basis_points, updated_at), DELETE');
