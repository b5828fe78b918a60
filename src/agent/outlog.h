/* src/agent/outlog.h: output.log's writer. Turns the command's stdout and stderr bytes into
 * records "2026-11-24T18:00:01.123Z out TEXT\n" (docs/rundir.md, "output.log"): lines longer
 * than OUTLOG_LINE_MAX and partial lines flushed after a second are written as continuation
 * records ("out+"), invalid UTF-8, control bytes and backslashes are escaped. Memory is
 * bounded: two line buffers of OUTLOG_LINE_MAX and one write buffer, whatever the output. */
#ifndef EPH_AGENT_OUTLOG_H
#define EPH_AGENT_OUTLOG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/attr.h"
#include "util/buf.h"

#define OUTLOG_LINE_MAX BUF_MAX_LINE /* raw bytes of one record before it is split */
#define OUTLOG_WBUF     (64u << 10)  /* bytes buffered before a write(2) */

enum outlog_stream { OUTLOG_OUT = 0, OUTLOG_ERR = 1 };

struct outlog_pending {
	unsigned char *data; /* OUTLOG_LINE_MAX bytes, allocated on first use */
	size_t len;
	int64_t since_ms; /* monotonic ms at which the first pending byte arrived */
};

struct outlog {
	int fd; /* borrowed; O_APPEND */
	char *wbuf;
	size_t wlen;
	struct outlog_pending pend[2];
	int err;          /* first write error (-errno); later output is dropped */
	uint64_t records; /* records written */
};

void outlog_init(struct outlog *o, int fd);
/* Writes what is buffered (not the pending partial lines) and frees; NULL is fine. */
void outlog_free(struct outlog *o);
/* Feeds N bytes of stream S that arrived at REAL_MS (UTC ms) / MONO_MS (monotonic ms). Every
 * complete line is formatted, and written before the call returns. Returns 0 or the first
 * write error. */
int outlog_feed(struct outlog *o, enum outlog_stream s, const void *p, size_t n, int64_t real_ms,
                int64_t mono_ms);
/* Flushes the pending partial line of S as a continuation record if it has waited at least
 * MIN_AGE_MS (0: now, e.g. at end of stream; then an incomplete UTF-8 sequence at its end is
 * escaped too). Returns the ms until it would be due, 0 if it was flushed, -1 if nothing is
 * pending. */
int64_t outlog_flush_partial(struct outlog *o, enum outlog_stream s, int64_t real_ms,
                             int64_t mono_ms, int64_t min_age_ms);
/* Writes the buffered records; 0 or the first write error. */
int outlog_sync(struct outlog *o);

/* Escapes P[0..N) as output.log does into B (unbounded by the caller's choice): valid UTF-8
 * is copied, '\\' becomes "\\\\", tab is kept, every other byte below 0x20, 0x7f and each byte
 * of an invalid UTF-8 sequence becomes "\xNN". -E2BIG if B's limit is reached. */
EPH_MUST_CHECK int outlog_escape(struct buf *b, const void *p, size_t n);
/* The length (0-3) of an incomplete but so far valid UTF-8 sequence at the end of P[0..N). */
size_t outlog_utf8_tail(const void *p, size_t n);
/* Formats UTC ms as "2026-11-24T18:00:01.123Z" (24 chars + NUL) into OUT[25]. */
void outlog_timestamp(int64_t real_ms, char out[25]);

#endif
