-- Webhook endpoints: where a workspace's events are pushed, and the
-- deliveries of each event to each endpoint.
--
-- Events reach deliveries through `fan_out_webhooks`, one process at a time,
-- after the sequencer has placed them: positions up to `event_log_head` are
-- committed, so a fan-out that moves its head past them never misses one.
-- A delivery row is unique per endpoint and event, so each event is
-- delivered once per endpoint whatever the number of servers; an endpoint
-- is worked by one process at a time, under a lease with a fencing token.
CREATE TABLE webhook_endpoints (
    id UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    -- Event types, or '{*}' for all.
    events TEXT[] NOT NULL,
    description TEXT,
    enabled BOOLEAN NOT NULL DEFAULT true,
    disabled_reason TEXT,
    -- The signing secret, sealed (`mvs1:...`), and while a roll overlaps
    -- the one before it, sealed too, until `previous_secret_expires_at`.
    secret_sealed TEXT NOT NULL,
    previous_secret_sealed TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    -- The endpoint's health: consecutive failed attempts, since when, and
    -- when it may be tried again after a round that failed.
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since TIMESTAMPTZ,
    retry_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    -- Who works it: a token per claim, fencing a worker whose lease ran out.
    lease_token UUID,
    lease_until TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_workspace_idx ON webhook_endpoints (workspace_id, created_at);

CREATE TABLE webhook_deliveries (
    id UUID PRIMARY KEY,
    endpoint_id UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL,
    event_pos BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    -- pending, succeeded, failed (gave up, or the event expired).
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_attempt_at TIMESTAMPTZ,
    response_status INTEGER,
    latency_ms INTEGER,
    last_error TEXT,
    delivered_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, event_pos)
);
-- What is due, per endpoint, in event order.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at);

CREATE TABLE webhook_fanout_head (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    pos BIGINT NOT NULL
);
INSERT INTO webhook_fanout_head (pos) SELECT pos FROM event_log_head;

-- Turns the placed events after the head (at most `batch` positions) into
-- deliveries for the enabled endpoints of their workspaces that take their
-- type. Under a transaction-scoped advisory lock (space "mvev", 2): one
-- fan-out at a time. Returns how many positions it moved past.
CREATE FUNCTION fan_out_webhooks(batch INTEGER) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    base BIGINT;
    top BIGINT;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1836475766, 2) THEN
        RETURN 0;
    END IF;
    SELECT pos INTO base FROM webhook_fanout_head FOR UPDATE;
    SELECT LEAST(pos, base + batch) INTO top FROM event_log_head;
    IF top <= base THEN
        RETURN 0;
    END IF;
    -- From the endpoints' side: few endpoints, each reading its workspace's
    -- events by (workspace_id, pos).
    INSERT INTO webhook_deliveries (id, endpoint_id, workspace_id, event_pos, event_type, created_at)
    SELECT gen_random_uuid(), w.id, w.workspace_id, e.pos, e.type, now()
    FROM webhook_endpoints w
    JOIN LATERAL (
        SELECT pos, type FROM events e
        WHERE e.workspace_id = w.workspace_id AND e.pos > base AND e.pos <= top
    ) e ON w.events = '{*}' OR e.type = ANY (w.events)
    WHERE w.enabled
    ORDER BY w.id, e.pos
    ON CONFLICT ON CONSTRAINT webhook_deliveries_once DO NOTHING;
    UPDATE webhook_fanout_head SET pos = top;
    RETURN top - base;
END;
$$;
