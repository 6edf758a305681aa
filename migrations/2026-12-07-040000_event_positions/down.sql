ALTER TABLE events ADD COLUMN pos BIGINT;
UPDATE events e SET pos = p.pos FROM event_positions p WHERE p.seq = e.seq;
CREATE INDEX events_workspace_pos_idx ON events (workspace_id, pos) WHERE pos IS NOT NULL;
DROP TABLE event_positions;

CREATE OR REPLACE FUNCTION sequence_events(batch INTEGER) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    head event_log_head%ROWTYPE;
    settled BOOLEAN;
    moved BOOLEAN := false;
    candidate BIGINT;
    done INTEGER;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1836475766, 1) THEN
        RETURN 0;
    END IF;
    SELECT * INTO head FROM event_log_head FOR UPDATE;
    -- Before the placing, so that the placing's snapshot sees every event
    -- of the transactions this finds ended.
    settled := head.next_floor IS NOT NULL
        AND pg_snapshot_xmin(pg_current_snapshot()) >= head.next_floor_xmax;
    -- Planned at each round with the floor's value (EXECUTE), so that the
    -- planner sees how few events lie above it and walks the primary key
    -- from there; a plan kept for any floor scans the whole table.
    EXECUTE 'WITH pending AS (
                 SELECT seq FROM events WHERE seq > $1 AND pos IS NULL ORDER BY seq LIMIT $2
             ), numbered AS (
                 SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM pending
             )
             UPDATE events e SET pos = $3 + numbered.n
             FROM numbered
             WHERE e.seq = numbered.seq'
        USING head.floor, batch, head.pos;
    GET DIAGNOSTICS done = ROW_COUNT;
    IF settled AND done < batch THEN
        -- Every event up to the candidate is placed (this round left none
        -- behind): it is the floor now; then a new candidate.
        IF head.next_floor > head.floor THEN
            head.floor := head.next_floor;
            moved := true;
        END IF;
        head.next_floor := NULL;
    END IF;
    IF head.next_floor IS NULL THEN
        -- The number first, then the snapshot (see above). Before its
        -- first use the sequence's last_value is the first number to come.
        SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
            INTO candidate FROM events_seq_seq;
        IF candidate > head.floor THEN
            head.next_floor := candidate;
            head.next_floor_xmax := pg_snapshot_xmax(pg_current_snapshot());
            moved := true;
        END IF;
    END IF;
    -- An idle log writes nothing.
    IF done > 0 OR moved THEN
        UPDATE event_log_head SET pos = head.pos + done, floor = head.floor,
            next_floor = head.next_floor, next_floor_xmax = head.next_floor_xmax;
    END IF;
    RETURN done;
END;
$$;

CREATE OR REPLACE FUNCTION fan_out_webhooks(batch INTEGER) RETURNS INTEGER LANGUAGE plpgsql AS $$
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
