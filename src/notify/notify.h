/* src/notify/notify.h: mail about runs — who is told about which outcome (the job's notify
 * policy), the message itself (RFC 5322, MIME UTF-8, no header any output can inject), and
 * queueing it in the store's outbox. No curl here: the outbox is sent by eph-mail (sender.h,
 * smtp.h: lib_mailer), which eph and the daemon run (mailproc.h). */
#ifndef EPH_NOTIFY_NOTIFY_H
#define EPH_NOTIFY_NOTIFY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/store.h"
#include "util/attr.h"
#include "util/buf.h"

struct conf;
struct conf_notify;
struct conf_strv;
struct diag;
struct source_health;

#define NOTIFY_LOG_LINES 50           /* log lines quoted in a message */
#define NOTIFY_LOG_READ  (256u << 10) /* bytes read from the end of output.log for them */

enum notify_event {
	NOTIFY_NONE,      /* no mail */
	NOTIFY_OUTCOME,   /* mail about the run's outcome */
	NOTIFY_RECOVERED, /* mail: the job succeeded after unsuccessful runs */
};

/* Decides whether run R (terminal) of a job with policy N sends mail. PREV is the job's
 * previous run that counts (notify_prev_counts), or NULL if there is none. WILL_RETRY says a
 * further attempt of the same run follows (the daemon's retries): an unsuccessful attempt
 * that will be retried sends nothing unless N->on_each_attempt. `failure` covers failed,
 * oom, timeout, killed and lost; `always` every terminal state but skipped; a cancelled run
 * sends only with `always`; `recovered` fires for a success whose PREV was unsuccessful (a
 * success that `success` or `always` already mails is sent once, as recovered). */
enum notify_event notify_decide(const struct conf_notify *n, const struct store_run *r,
                                const struct store_run *prev, bool will_retry);
/* true when run P, older than run R of the same job, decides `recovered` for R: P is
 * terminal, not skipped nor cancelled, and not an earlier attempt of R's own retries (when
 * R->attempt > 1, the runs just before it with attempts R->attempt - 1 … 1) unless
 * ON_EACH_ATTEMPT. CHAIN is the attempt number the caller's walk expects next (start with
 * R->attempt - 1; the function decrements it as it passes over R's own attempts). */
bool notify_prev_counts(const struct store_run *r, const struct store_run *p, int *chain,
                        bool on_each_attempt);
/* true when ST is an unsuccessful outcome (failed, oom, timeout, killed, lost). */
bool notify_state_unsuccessful(enum store_state st);

/* What a message about a run shows besides the run's row. Every field may be NULL / 0. */
struct notify_info {
	const struct store_run *run;
	enum notify_event event;
	const struct store_sample *samples; /* memory timeline */
	size_t nsamples;
	const char *log_tail;       /* the last lines of the log, LF-separated (notify_log_tail) */
	const char *commit_subject; /* the commit's subject line */
	const char *host;           /* where it ran */
};

/* The subject, UTF-8, one line: "[eph] JOB: oom after 41s (peak 2.0 GiB / limit 2.0 GiB)".
 * Caller frees. */
char *notify_subject(const struct notify_info *in);
/* Appends the plain-text body (LF line ends) to OUT. 0 or -E2BIG. */
EPH_MUST_CHECK int notify_body(const struct notify_info *in, struct buf *out);
/* A one-line text chart of the samples' memory over time, WIDTH columns of ▁…█ (each the
 * highest sample of its slice of time), appended to OUT. 0, -E2BIG, -ENOENT when N is 0. */
EPH_MUST_CHECK int notify_chart(const struct store_sample *s, size_t n, size_t width,
                                struct buf *out);

/* The last MAX_LINES lines of output.log text LOG[0..LEN) as the command wrote them: records'
 * texts, fragments joined, "\\" unescaped; other escapes (\xNN: control bytes, CR, invalid
 * UTF-8) are kept as text, so the result is valid UTF-8 without a control byte but tab and
 * LF. A first partial record (LOG read from the middle of the file) is dropped when
 * FROM_MIDDLE. Caller frees; "" when there is nothing. */
char *notify_log_tail(const char *log, size_t len, size_t max_lines, bool from_middle);

/* The headers of a message. */
struct notify_hdr {
	const char *from;
	char *const *to; /* NTO addresses */
	size_t nto;
	const char *subject; /* UTF-8 */
	time_t date;
	const char *msgid; /* "<...@host>" */
};

/* Builds the whole RFC 5322 message, CRLF line ends: Date, Message-ID, From, To, Subject
 * (RFC 2047 B-encoded when not ASCII), MIME-Version, Content-Type text/plain UTF-8,
 * Content-Transfer-Encoding (8bit, or quoted-printable when a line would pass 998 bytes),
 * Auto-Submitted: auto-generated, then a blank line and BODY with every CR, LF and CRLF
 * turned into CRLF. -EINVAL when a header value holds a control character (nothing from a
 * run's output ever goes into a header); -E2BIG past OUT's cap. */
EPH_MUST_CHECK int notify_message(const struct notify_hdr *h, const char *body, struct buf *out);
/* A new unique Message-ID "<eph.TIME.RANDOM@HOST>". Caller frees. */
char *notify_msgid(const char *host, time_t now);
/* This machine's name (gethostname), "localhost" if it has none. Caller frees. */
char *notify_hostname(void);

/* Call when run RUN_ID has been recorded terminal: if its job's notify policy (in C) says so,
 * builds the message (reading the run, its samples, the commit's subject, the end of its
 * output.log) and queues it in the outbox, once per run whatever the number of calls. The
 * commit's subject is COMMIT_SUBJ when the caller has it; else it is read from STATE_DIR's mirror
 * with `git log` (up to 5 s), unless STATE_DIR is NULL: the daemon, whose loop runs no git,
 * passes the subject its run's preparation read, or nothing. Returns 1 when a message was
 * queued, 0 when none is due (or it was queued before), -errno on failure (with a message in
 * D). WILL_RETRY as notify_decide. Never sends: then run eph-mail (cmd_mail.c in the
 * foreground, dm_mail_kick in the daemon). */
EPH_MUST_CHECK int notify_run_finished(struct store *s, const struct conf *c, const char *state_dir,
                                       int64_t run_id, bool will_retry, const char *commit_subj,
                                       struct diag *d);

/* Queues a message about ephemeron itself (a configuration that failed to reload, a source
 * that cannot be fetched for longer than mail.source_alarm) to mail.admin of C: SUBJECT is
 * prefixed "[eph] ", TEXT (any bytes; it only ever goes into the body) is the body. KEY makes
 * it unique: a second call with the same KEY queues nothing (0), so name the occurrence
 * ("reload:<mtime>", "source:<url>:<first failure>"). Returns 1 when queued, 0 when there is
 * no mail.admin or KEY was queued before, -errno on failure (a message in D). */
EPH_MUST_CHECK int notify_admin(struct store *s, const struct conf *c, const char *key,
                                const char *subject, const char *text, struct diag *d);
/* What notify_admin and other plain messages share: queues TEXT (the body) under SUBJECT
 * (prefixed "[eph] ") to TO, about run RUN_ID (0: none), unique by DEDUP (a second call with
 * it queues nothing: 0). Returns 1 when queued, 0 when there is nothing to send (no
 * mail.smtp, TO empty) or DEDUP was queued before, -errno on failure (a message in D, which
 * WHAT begins: "mail to the admins"). */
EPH_MUST_CHECK int notify_queue(struct store *s, const struct conf *c, const struct conf_strv *to,
                                int64_t run_id, const char *dedup, const char *subject,
                                const char *text, const char *what, struct diag *d);

/* The admin's alarm about a source that cannot be fetched: H is the fetch health of C's
 * source (source_health, read at NOW, UTC seconds). When H's fetches have failed since
 * H->failing_since for at least mail.source_alarm, queues ONE message per outage to
 * mail.admin through notify_admin, keyed "source:<mirror key>:<failing_since>": a second call
 * (a later run, a restarted daemon) queues nothing, a new outage (failing_since moved) queues
 * a new one. Subject "[eph] source unreachable for 1h02m: REPO"; the body has the repository
 * (no credentials), the branch, the last successful fetch and the commit runs use, the last
 * error and what source.on_fetch_error makes of it. Returns 1 when queued, 0 when none is due
 * (in place, not failing, failing_since unknown, not for long enough), there is no mail.admin
 * or mail.smtp, or it was queued before; -errno on failure (a message in D). Never sends. */
EPH_MUST_CHECK int notify_source_alarm(struct store *s, const struct conf *c,
                                       const struct source_health *h, double now, struct diag *d);

#endif
