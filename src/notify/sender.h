/* src/notify/sender.h: sending the outbox. Two senders share one policy: a message is leased
 * for an attempt, then recorded sent, or retried after a backoff (smtp_backoff: 30 s,
 * doubling, at most 1 h), or given up (state failed, logged, shown by eph status) once
 * mail.max_age has passed since it was queued.
 * - notify_send_pending: blocking, for a foreground command with no daemon (`eph run`).
 * - struct notify_sender: the daemon's, on its libuv loop, through a curl multi handle driven
 *   by uv_poll and uv_timer (curl_multi_socket_action): nothing on the loop ever blocks on
 *   the network. It resumes whatever the outbox holds when it starts: its first pass tries
 *   every queued message at once, backoff or not (a restart is when a fixed server or
 *   setting is likely), then the backoff applies again. */
#ifndef EPH_NOTIFY_SENDER_H
#define EPH_NOTIFY_SENDER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "util/attr.h"

struct conf_mail;
struct diag;
struct store;

struct notify_send_result {
	size_t sent;      /* accepted by the server */
	size_t retried;   /* failed, still queued for a later attempt */
	size_t given_up;  /* failed past mail.max_age: now state failed */
	char *last_error; /* what the last failure said, or NULL; notify_send_result_clear */
};

void notify_send_result_clear(struct notify_send_result *r);

/* Tries each queued message once, oldest first, until DEADLINE (UTC seconds; each attempt is
 * also bounded by mail.timeout): the messages due now, or every queued one (backoff
 * ignored) when ALL. A message another sender holds is left to it. Fills *RES. Returns 0
 * (whatever the server said: see RES), or -errno when the store failed (a message in D).
 * A failure to read the password counts as a failed attempt of each message, with the
 * reason in RES->last_error. */
EPH_MUST_CHECK int notify_send_pending(struct store *s, const struct conf_mail *m, double deadline,
                                       bool all, struct notify_send_result *res, struct diag *d);

/* What the daemon's sender reports: WARN false for a message accepted, true for a failed
 * attempt or a message given up. RUN_ID is the run the message is about (0 if none). */
typedef void notify_log_fn(void *arg, bool warn, int64_t run_id, const char *msg);

struct notify_sender; /* opaque */

/* Starts a sender on LOOP for the outbox of S (which must stay open until the sender is
 * closed), with a copy of the settings M (notify_sender_set_conf replaces them). It looks
 * at the outbox at once and then whenever a message becomes due. LOG (may be NULL) with ARG.
 * 0 or -errno (curl could not be initialised); *OUT owns the sender (notify_sender_stop). */
EPH_MUST_CHECK int notify_sender_start(uv_loop_t *loop, struct store *s, const struct conf_mail *m,
                                       notify_log_fn *log, void *arg, struct notify_sender **out);
/* New settings (a configuration reload); copied. Transfers going on keep the old ones. */
void notify_sender_set_conf(struct notify_sender *ns, const struct conf_mail *m);
/* A message was queued (notify_run_finished returned 1): look at the outbox now. */
void notify_sender_kick(struct notify_sender *ns);
/* How many transfers are going on. */
size_t notify_sender_busy(const struct notify_sender *ns);
/* Aborts the transfers going on (their messages stay queued: the next start retries them
 * once their lease, mail.timeout + 10 s, has passed), closes every handle, frees NS in the
 * last close callback, then calls DONE(ARG) if DONE is non-NULL. NULL NS is fine. */
void notify_sender_stop(struct notify_sender *ns, void (*done)(void *arg), void *arg);

#endif
