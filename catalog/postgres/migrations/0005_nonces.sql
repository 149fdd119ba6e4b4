-- Replay protection (rdsbackup.NonceStore), shared by every node: one row
-- per accepted (access key, nonce), filed by the minute of its signed time,
-- kept until that minute is older than the window (15 minutes) and then
-- deleted in batches. hash is rdsbackup.NonceHash: 16 bytes, whatever the
-- nonce. A logged table: an UNLOGGED one is emptied by any crash of the
-- server, which would reopen replay for the whole window; commits are
-- asynchronous instead (see use_nonce).
CREATE TABLE nonces (
	hash   bytea PRIMARY KEY,
	minute bigint NOT NULL
);
CREATE INDEX nonces_by_minute ON nonces (minute);

-- How many nonces each access key holds per minute, so that a key's share
-- is a sum of at most 31 rows and the totals (read once a second per node)
-- a scan of this small table. n is in no index, so its updates are HOT.
CREATE TABLE nonce_counts (
	access_key text NOT NULL,
	minute     bigint NOT NULL,
	root       boolean NOT NULL,
	n          bigint NOT NULL,
	PRIMARY KEY (access_key, minute)
);

-- use_nonce records a nonce in one round trip and returns 0 (accepted),
-- 1 (replayed), 2 (the key holds its whole share) or 3 (full: the caller's
-- verdict from the totals). Two nodes inserting one nonce at once meet on
-- the primary key: the second waits for the first and then finds the row,
-- so exactly one accepts. Its commit is not waited for on disk
-- (synchronous_commit off, this transaction only): the row is visible to
-- every node at once, and a crash of the server can lose only the last
-- fraction of a second of nonces (3 × wal_writer_delay at most).
CREATE FUNCTION use_nonce(p_hash bytea, p_minute bigint, p_oldest bigint, p_key text, p_root boolean, p_share bigint, p_full boolean)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	held bigint;
	inserted int;
BEGIN
	PERFORM set_config('synchronous_commit', 'off', true);
	IF NOT p_root THEN
		SELECT COALESCE(SUM(n), 0) INTO held FROM nonce_counts WHERE access_key = p_key AND minute >= p_oldest;
	END IF;
	IF p_full OR (NOT p_root AND held >= p_share) THEN
		-- Refused; but a replay is told as one.
		IF EXISTS (SELECT 1 FROM nonces WHERE hash = p_hash AND minute >= p_oldest) THEN
			RETURN 1;
		END IF;
		IF NOT p_root AND held >= p_share THEN
			RETURN 2;
		END IF;
		RETURN 3;
	END IF;
	-- A row still here from an expired minute is taken over; a live one is
	-- a replay (also one another node inserted a moment ago: the insert
	-- waits for that node's transaction), and nothing changes.
	INSERT INTO nonces (hash, minute) VALUES (p_hash, p_minute)
		ON CONFLICT (hash) DO UPDATE SET minute = EXCLUDED.minute WHERE nonces.minute < p_oldest;
	GET DIAGNOSTICS inserted = ROW_COUNT;
	IF inserted = 0 THEN
		RETURN 1;
	END IF;
	INSERT INTO nonce_counts (access_key, minute, root, n) VALUES (p_key, p_minute, p_root, 1)
		ON CONFLICT (access_key, minute) DO UPDATE SET n = nonce_counts.n + 1;
	RETURN 0;
END
$$;
