-- src/store/migrate_2.sql: schema version 2 of STATE/eph.db: the mail outbox.
-- Embedded into the binary at build time (src/store/meson.build) and applied by store.c to a
-- version-1 database in one transaction with PRAGMA user_version = 2.
--
-- Every message is written here before anything tries to send it, and sent from here with
-- retry and backoff: an SMTP outage delays mail, never loses it. A sender claims a due row by
-- setting lease_until to the latest its attempt may end (store_outbox_claim), so two senders
-- (the daemon and a foreground `eph run`) never send the same message at once; a lease left
-- by a crashed sender lapses by itself.

CREATE TABLE outbox (
	id         INTEGER PRIMARY KEY,
	dedup      TEXT UNIQUE,          -- e.g. "run:1234": the same message is never queued twice
	run_id     INTEGER,              -- the run it is about; NULL for mail about eph itself
	mail_from  TEXT    NOT NULL,     -- envelope sender
	rcpt       TEXT    NOT NULL,     -- envelope recipients, one a line
	subject    TEXT    NOT NULL,     -- as shown by eph status (decoded)
	message    BLOB    NOT NULL,     -- the whole RFC 5322 message, CRLF line ends
	state      TEXT    NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
	created_at REAL    NOT NULL,     -- UTC seconds with ms
	attempts   INTEGER NOT NULL DEFAULT 0,
	next_at    REAL    NOT NULL,     -- when the next attempt is due (queued only)
	lease_until REAL   NOT NULL DEFAULT 0, -- a sender is trying it until then
	last_error TEXT,                 -- what the server (or libcurl) said last
	done_at    REAL                  -- when it was accepted, or given up
);
-- Only the few queued messages are in this index: the sender reads it.
CREATE INDEX outbox_queued ON outbox (next_at) WHERE state = 'queued';
