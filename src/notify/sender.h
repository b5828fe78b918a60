/* src/notify/sender.h: sending the outbox, in eph-mail (src/eph_mail.c) only: this and smtp.h
 * are lib_mailer, the one part of ephemeron linked with libcurl. A message is leased for an
 * attempt, then recorded sent, or retried after a backoff (smtp_backoff: 30 s, doubling, at
 * most 1 h), or given up (state failed, logged, listed by eph mail list --failed) once
 * mail.max_age has passed since it was queued. */
#ifndef EPH_NOTIFY_SENDER_H
#define EPH_NOTIFY_SENDER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/attr.h"

struct conf_mail;
struct diag;
struct store;

#define SENDER_MAX_XFERS 4 /* transfers at once */

struct notify_send_result {
	size_t sent;      /* accepted by the server */
	size_t retried;   /* failed, still queued for a later attempt */
	size_t given_up;  /* failed past mail.max_age: now state failed */
	char *last_error; /* what the last failure said, or NULL; notify_send_result_clear */
};

void notify_send_result_clear(struct notify_send_result *r);

/* What a pass reports, once per attempt: WARN false for a message accepted, true for a failed
 * attempt, a message given up or an outcome the store could not record. RUN_ID is the run
 * the message is about (0 if none). */
typedef void notify_log_fn(void *arg, bool warn, int64_t run_id, const char *msg);

/* One pass over the outbox of S with the settings M: the messages due now, or every queued
 * one (backoff ignored) when ALL, as they are when the pass starts, oldest first, each tried
 * once, up to SENDER_MAX_XFERS at once (one curl multi handle; the pass blocks: it is the
 * whole work of eph-mail). No attempt starts after DEADLINE (UTC seconds); each is bounded by
 * mail.timeout. A message another sender holds is left to it. LOG (may be NULL) with ARG
 * hears of each attempt; *RES counts them. Returns 0 whatever the server said, or -errno when
 * the store (or libcurl) failed, with a message in D. A password that cannot be read counts
 * as a failed attempt of each message, with the reason in RES->last_error. */
/* Asks the pass in progress to start no further attempt and to return once the transfers
 * going on have ended (each bounded by mail.timeout): a message the server accepted is then
 * recorded sent, never sent again after its lease. Async-signal-safe: for eph-mail's SIGTERM
 * handler (the daemon's stop). */
void notify_send_stop(void);
EPH_MUST_CHECK int notify_send_pass(struct store *s, const struct conf_mail *m, double deadline,
                                    bool all, notify_log_fn *log, void *arg,
                                    struct notify_send_result *res, struct diag *d);

#endif
