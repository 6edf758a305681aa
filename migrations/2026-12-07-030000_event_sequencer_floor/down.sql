CREATE INDEX events_unsequenced_idx ON events (seq) WHERE pos IS NULL;
ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval('events_seq_seq');
DROP FUNCTION next_event_seq();
ALTER TABLE event_log_head DROP COLUMN floor, DROP COLUMN next_floor, DROP COLUMN next_floor_xmax;
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
