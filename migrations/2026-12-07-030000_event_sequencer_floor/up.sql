-- The sequencer looked for the events to place through a partial index
-- of the events without a position, whose entries of placed events stay
-- until a vacuum, each round walking them all again: the sends paid 40 µs
-- or more of PostgreSQL time each for the log (measured: sends 18-25%
-- slower with the log on, 0-5% with it on and the sequencer paused).
--
-- Now the sequencer scans only the events above a floor: every event at
-- or below it has its position or never will (its transaction rolled
-- back). The floor moves up to a candidate, the sequence's last value
-- read at an earlier round, once every transaction that can hold a number
-- up to it has ended: each takes its transaction id before its number
-- (next_event_seq), so they all have ids below the snapshot's xmax taken
-- after that read, and once the oldest running transaction is past that
-- xmax, they are all over (committed and visible, or rolled back).
CREATE FUNCTION next_event_seq() RETURNS BIGINT LANGUAGE plpgsql AS $$
BEGIN
    -- The transaction id first: the sequencer's floor relies on it.
    PERFORM pg_current_xact_id();
    RETURN nextval('events_seq_seq');
END;
$$;
ALTER TABLE events ALTER COLUMN seq SET DEFAULT next_event_seq();
-- One number at a time: a backend's cached numbers would be handed out
-- after the sequencer read past them.
ALTER SEQUENCE events_seq_seq CACHE 1;

ALTER TABLE event_log_head
    ADD COLUMN floor BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN next_floor BIGINT,
    ADD COLUMN next_floor_xmax xid8;
-- Below the oldest event still without a position, less a margin for
-- transactions of older servers in flight while this migration runs.
UPDATE event_log_head SET floor = GREATEST(0, LEAST(
    COALESCE((SELECT min(seq) - 1 FROM events WHERE pos IS NULL), (SELECT max(seq) FROM events), 0),
    COALESCE((SELECT max(seq) FROM events), 0)) - 100000);

DROP INDEX events_unsequenced_idx;

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
