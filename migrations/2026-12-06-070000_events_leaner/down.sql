CREATE OR REPLACE FUNCTION sequence_events(batch INTEGER) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    done INTEGER;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1836475766, 1) THEN
        RETURN 0;
    END IF;
    WITH pending AS (
        SELECT seq FROM events WHERE pos IS NULL ORDER BY seq LIMIT batch
    ), numbered AS (
        SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM pending
    ), base AS (
        SELECT coalesce(max(pos), 0) AS b FROM events
    )
    UPDATE events e SET pos = base.b + numbered.n
    FROM numbered, base
    WHERE e.seq = numbered.seq;
    GET DIAGNOSTICS done = ROW_COUNT;
    RETURN done;
END;
$$;
DROP TABLE event_log_head;
ALTER TABLE events ADD CONSTRAINT events_pos_key UNIQUE (pos);
CREATE INDEX events_created_idx ON events (created_at) WHERE pos IS NOT NULL;
