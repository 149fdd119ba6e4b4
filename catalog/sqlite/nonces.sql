-- The replay protection's file (DB.NoncePath, beside the catalog's; see
-- DB.Nonces for why it is a file of its own), created when the catalog
-- opens. Nothing else is in it.
--
-- Replay protection (rdsbackup.NonceStore): one row per accepted
-- (access key, nonce), filed by the minute of its signed time, kept until
-- that minute is older than the window (15 minutes) and then deleted in
-- batches. hash is rdsbackup.NonceHash: 16 bytes, whatever the nonce.
-- No index on minute: a nonce then writes one page here, not two, and the
-- sweep, once a minute, scans the table (expired rows are spread evenly
-- over it, so the batches together read it about once).
CREATE TABLE IF NOT EXISTS nonces (
	hash   BLOB PRIMARY KEY,
	minute INTEGER NOT NULL
) WITHOUT ROWID;

-- How many nonces each access key holds per minute: the shares are checked
-- by summing at most 31 rows of one key (and, once a second, the rows of
-- all keys, a scan of this small table) rather than counting nonces.
CREATE TABLE IF NOT EXISTS nonce_counts (
	access_key TEXT NOT NULL,
	minute     INTEGER NOT NULL,
	root       INTEGER NOT NULL,
	n          INTEGER NOT NULL,
	PRIMARY KEY (access_key, minute)
) WITHOUT ROWID;
