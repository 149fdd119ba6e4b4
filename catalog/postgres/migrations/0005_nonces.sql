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

-- use_nonces records a batch of nonces in one round trip and one
-- transaction (the requests a node received during the previous call), and
-- returns a verdict for each: 0 accepted, 1 replayed, 2 the key holds its
-- whole share, 3 full (p_full: the caller's verdict from the totals).
--
-- Two nodes inserting one nonce at once meet on the primary key: the second
-- waits for the first and then finds the row, so exactly one accepts. The
-- caller sorts the batch by hash, and the counters are written last in key
-- order, so that batches on several nodes take their row locks in one
-- order and cannot deadlock.
--
-- The commit is not waited for on disk (synchronous_commit off, this
-- transaction only): the rows are visible to every node at once, and a
-- crash of the server itself can lose only the last fraction of a second of
-- nonces (3 × wal_writer_delay at most).
CREATE FUNCTION use_nonces(p_hash bytea[], p_minute bigint[], p_oldest bigint[], p_key text[], p_root boolean[],
	p_full boolean[], p_share bigint)
RETURNS int[] LANGUAGE plpgsql AS $$
DECLARE
	verdicts int[] := '{}';
	held bigint;
	inserted int;
	i int;
BEGIN
	PERFORM set_config('synchronous_commit', 'off', true);
	FOR i IN 1 .. coalesce(array_length(p_hash, 1), 0) LOOP
		held := 0;
		IF NOT p_root[i] THEN
			SELECT COALESCE(SUM(n), 0) INTO held FROM nonce_counts WHERE access_key = p_key[i] AND minute >= p_oldest[i];
			-- The key's nonces accepted earlier in this batch are not
			-- counted yet.
			held := held + (SELECT count(*) FROM generate_subscripts(verdicts, 1) j WHERE verdicts[j] = 0 AND p_key[j] = p_key[i]);
		END IF;
		IF p_full[i] OR (NOT p_root[i] AND held >= p_share) THEN
			-- Refused; but a replay is told as one.
			IF EXISTS (SELECT 1 FROM nonces WHERE hash = p_hash[i] AND minute >= p_oldest[i]) THEN
				verdicts := verdicts || 1;
			ELSIF NOT p_root[i] AND held >= p_share THEN
				verdicts := verdicts || 2;
			ELSE
				verdicts := verdicts || 3;
			END IF;
			CONTINUE;
		END IF;
		-- A row still here from an expired minute is taken over; a live one
		-- is a replay (also one another node inserted a moment ago: the
		-- insert waits for that node's transaction), and nothing changes.
		INSERT INTO nonces (hash, minute) VALUES (p_hash[i], p_minute[i])
			ON CONFLICT (hash) DO UPDATE SET minute = EXCLUDED.minute WHERE nonces.minute < p_oldest[i];
		GET DIAGNOSTICS inserted = ROW_COUNT;
		verdicts := verdicts || CASE WHEN inserted = 0 THEN 1 ELSE 0 END;
	END LOOP;
	INSERT INTO nonce_counts (access_key, minute, root, n)
		SELECT p_key[j], p_minute[j], bool_or(p_root[j]), count(*)
		FROM generate_subscripts(p_hash, 1) j WHERE verdicts[j] = 0
		GROUP BY p_key[j], p_minute[j] ORDER BY 1, 2
		ON CONFLICT (access_key, minute) DO UPDATE SET n = nonce_counts.n + EXCLUDED.n;
	RETURN verdicts;
END
$$;
