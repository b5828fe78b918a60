/* src/store/outbox.h: the mail outbox table of the store (schema version 2, migrate_2.sql),
 * and the mail owed by runs recorded without a daemon (version 3, migrate_3.sql). A message is
 * written here, whole, before anything tries to send it; senders claim a due message, try it,
 * and record the outcome, so an SMTP outage or a restart delays mail and never loses it, and
 * two senders never send the same message. */
#ifndef EPH_STORE_OUTBOX_H
#define EPH_STORE_OUTBOX_H
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/attr.h"

enum outbox_state { OUTBOX_QUEUED, OUTBOX_SENT, OUTBOX_FAILED };

/* One row of `outbox`. Strings are owned (outbox_msg_clear frees them). */
struct outbox_msg {
	int64_t id;
	char *dedup;    /* unique key ("run:1234"), or NULL */
	int64_t run_id; /* 0 = not about a run */
	char *from;     /* envelope sender */
	char *rcpt;     /* envelope recipients, one a line */
	char *subject;  /* decoded, for eph status */
	char *data;     /* the message, CRLF line ends, NUL-terminated */
	size_t len;     /* bytes of data */
	enum outbox_state state;
	double created_at; /* UTC seconds; store_outbox_add sets it when 0 */
	int attempts;
	double next_at; /* when the next attempt is due; store_outbox_add uses created_at when 0 */
	char *last_error;
	double done_at; /* 0 = not yet */
};

const char *outbox_state_name(enum outbox_state st); /* "queued", "sent", "failed" */
void outbox_msg_init(struct outbox_msg *m);
void outbox_msg_clear(struct outbox_msg *m);           /* frees the strings, re-initialises */
void outbox_msgs_free(struct outbox_msg *v, size_t n); /* NULL is fine */

/* As store.h's functions, these return 0 or -errno (-EBUSY, -ENOSPC, -EROFS, -EIO). */

/* Queues M (state queued; M->id, state, attempts, last_error and done_at are ignored) and sets
 * *ID (may be NULL). -EEXIST, and nothing written, when a message with M->dedup exists. The
 * commit is durable on return. */
EPH_MUST_CHECK int store_outbox_add(struct store *s, const struct outbox_msg *m, int64_t *id);
/* The queued messages due by DUE_BY (next_at <= DUE_BY; pass NOW, or a later time to try
 * messages still waiting out their backoff) and not leased at NOW, oldest first, at most
 * LIMIT (0 = all): *OUT is a new array of *N (outbox_msgs_free; NULL when none). */
EPH_MUST_CHECK int store_outbox_due(struct store *s, double now, double due_by, size_t limit,
                                    struct outbox_msg **out, size_t *n);
/* The earliest time a queued message becomes due (the later of its next_at and the end of its
 * lease) into *AT; -ENOENT when none is queued. */
EPH_MUST_CHECK int store_outbox_next_due(struct store *s, double *at);
/* Leases queued message ID for one attempt: if it is still queued, due by DUE_BY and not
 * leased at NOW, leases it until UNTIL (the latest the attempt may end) and returns 0;
 * -EALREADY when another sender holds it or it is no longer queued. A lease left by a crashed
 * sender lapses at UNTIL. */
EPH_MUST_CHECK int store_outbox_claim(struct store *s, int64_t id, double now, double due_by,
                                      double until);
/* Records that message ID was accepted by the server at AT (and ends its lease). */
EPH_MUST_CHECK int store_outbox_sent(struct store *s, int64_t id, double at);
/* Records a failed attempt of message ID: attempts + 1, ERROR, the next try at NEXT_AT; ends
 * its lease. */
EPH_MUST_CHECK int store_outbox_retry(struct store *s, int64_t id, double next_at,
                                      const char *error);
/* Gives message ID up at AT (mail.max_age passed): attempts + 1, state failed, ERROR. */
EPH_MUST_CHECK int store_outbox_fail(struct store *s, int64_t id, double at, const char *error);
/* Reads message ID into *OUT (initialised here; outbox_msg_clear it); -ENOENT if none. */
EPH_MUST_CHECK int store_outbox_get(struct store *s, int64_t id, struct outbox_msg *out);
/* The messages in state ST, newest first, at most LIMIT (0 = all), without their data (NULL,
 * len 0): for eph status. *OUT as store_outbox_due. */
EPH_MUST_CHECK int store_outbox_list(struct store *s, enum outbox_state st, size_t limit,
                                     struct outbox_msg **out, size_t *n);

/* Mail owed (migrate_3.sql): the runs that store_run_finish_owing_mail recorded, whose mail
 * the daemon's next start decides. */
/* The runs listed, oldest first: *IDS is a new array of *N (free(); NULL when none). */
EPH_MUST_CHECK int store_mail_owed(struct store *s, int64_t **ids, size_t *n);
/* Removes run ID from the list (its mail was decided); 0 or -errno. */
EPH_MUST_CHECK int store_mail_owed_clear(struct store *s, int64_t id);

#endif
