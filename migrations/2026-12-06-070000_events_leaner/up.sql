-- The event log with fewer index entries per event: with an event per
-- send, its upkeep doubled PostgreSQL's CPU per send (72 to 142 µs in
-- scripts/bench.sh). Each event was indexed by seq, pos (unique), pos
-- not yet set, workspace and pos, and created_at, and placing it wrote a
-- second version into all of them. Now: seq, the unplaced ones, and
-- workspace and pos. The last position given is kept in a one-row table
-- instead of read from a unique index, and old events are deleted by seq
-- (which follows time) instead of through an index on created_at.
DROP INDEX events_created_idx;
ALTER TABLE events DROP CONSTRAINT events_pos_key;

CREATE TABLE event_log_head (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    pos BIGINT NOT NULL
);
INSERT INTO event_log_head (pos) SELECT coalesce(max(pos), 0) FROM events;

CREATE OR REPLACE FUNCTION sequence_events(batch INTEGER) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    base BIGINT;
    done INTEGER;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1836475766, 1) THEN
        RETURN 0;
    END IF;
    SELECT pos INTO base FROM event_log_head FOR UPDATE;
    WITH pending AS (
        SELECT seq FROM events WHERE pos IS NULL ORDER BY seq LIMIT batch
    ), numbered AS (
        SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM pending
    )
    UPDATE events e SET pos = base + numbered.n
    FROM numbered
    WHERE e.seq = numbered.seq;
    GET DIAGNOSTICS done = ROW_COUNT;
    IF done > 0 THEN
        UPDATE event_log_head SET pos = base + done;
    END IF;
    RETURN done;
END;
$$;
