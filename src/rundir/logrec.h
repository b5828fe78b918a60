/* src/rundir/logrec.h: output.log's reader (docs/rundir.md, "output.log"; the writer is
 * src/agent/outlog.c). Every reader of output.log (eph logs, eph run, a mail's tail) takes its
 * records from here, with one rule for a line that is not one:
 *
 *   A record is a complete line (it ends in '\n') of the form "TIMESTAMP TAG TEXT": the
 *   timestamp as the agent writes it ("2026-11-24T18:00:01.123Z"), one space, a tag among
 *   "out", "err", "out+" and "err+", one space, then the text: valid UTF-8 without a byte
 *   below 0x20 but tab, nor 0x7f (the agent escapes all others). Any other line (a torn write, a
 * line added by hand, a file that is not an output.log) is skipped whole, counted, and never shown.
 *   The end of the data after its last newline is not a line yet: a follower waits for the
 *   rest; a reader of a finished run skips it as well. */
#ifndef EPH_RUNDIR_LOGREC_H
#define EPH_RUNDIR_LOGREC_H
#include <stdbool.h>
#include <stddef.h>

#include "util/attr.h"

#define LOGREC_TS_LEN 24 /* "2026-11-24T18:00:01.123Z" */

enum logrec_stream { LOGREC_OUT = 0, LOGREC_ERR = 1 };

/* One record; the pointers are into the caller's data. */
struct logrec {
	const char *ts; /* LOGREC_TS_LEN bytes, not NUL-terminated */
	enum logrec_stream stream;
	bool more;        /* "out+"/"err+": no newline followed TEXT: the next record of the
	                   * stream continues the line */
	const char *text; /* still escaped (logrec_unescape) */
	size_t len;
};

/* Parses LINE[0..N), a line without its newline. 0, or -EINVAL if it is not a record. */
EPH_MUST_CHECK int logrec_parse(const char *line, size_t n, struct logrec *r);

/* Returns 0 to go on, anything else to stop (logrec_foreach then returns it). */
typedef int (*logrec_fn)(const struct logrec *r, void *arg);

/* Calls FN for each record among the complete lines of DATA[0..LEN), and counts the other lines
 * in *SKIPPED (may be NULL). *CONSUMED (may be NULL) is set to the bytes up to the end of the
 * last complete line, where a follower resumes. Returns 0, or FN's nonzero return. */
int logrec_foreach(const char *data, size_t len, logrec_fn fn, void *arg, size_t *consumed,
                   size_t *skipped);

/* Decodes the escapes of TEXT[0..N) into OUT (room for N bytes: decoding only shrinks) and
 * returns the bytes written. "\\" always becomes '\'; "\xNN" becomes its byte only with ALL
 * (the command's own bytes, for a pipe), else it stays as it is, so that no byte of the output
 * can drive a terminal or break a mail. A backslash that starts neither is copied. */
size_t logrec_unescape(const char *text, size_t n, bool all, char *out);

#endif
