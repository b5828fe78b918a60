/* src/notify/mailproc.h: talking to eph-mail (src/eph_mail.c), the process that sends mail, so
 * that eph itself (and the daemon) never loads libcurl. The caller writes the jobs file's
 * mail settings on eph-mail's stdin as one JSON object (nothing secret: the password stays in
 * password_file or password_env, read by eph-mail); eph-mail reports one JSON object a line
 * on stdout:
 *   {"warn":false,"run":12,"msg":"mail \"[eph] j: failed\" sent"}    an attempt (send)
 *   {"sent":1,"retried":0,"given_up":0,"last_error":null}           the last line of send
 *   {"error":"mail: cannot read the outbox: ..."}                   it could not work at all
 * No curl here: this is lib_notify. */
#ifndef EPH_NOTIFY_MAILPROC_H
#define EPH_NOTIFY_MAILPROC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/attr.h"

struct json_t;

/* A JSON string of S (NULL: JSON null); bytes that are not UTF-8 (a server may send anything)
 * become '?'. The helpers' JSON lines (eph-mail's, eph-upload's) are built with these. */
struct json_t *mailproc_jstr(const char *s);
/* O (taken) as one compact line of JSON (caller frees); aborts only when out of memory, as
 * xmalloc does. */
char *mailproc_dump(struct json_t *o);

struct conf_mail;
struct diag;

#define MAILPROC_NAME "eph-mail"

/* The settings M as one line of JSON (no line end). Caller frees. */
char *mailproc_conf_json(const struct conf_mail *m);
/* Parses TEXT[0..LEN) (mailproc_conf_json's) into *OUT, whose strings it owns
 * (mailproc_conf_clear). 0, or -EINVAL with a message in D (OUT is then cleared). */
EPH_MUST_CHECK int mailproc_conf_parse(const char *text, size_t len, struct conf_mail *out,
                                       struct diag *d);
void mailproc_conf_clear(struct conf_mail *m); /* frees what mailproc_conf_parse set; zeroes */

enum mailproc_kind { MAILPROC_EVENT, MAILPROC_RESULT, MAILPROC_ERROR };

/* One line of eph-mail's output. */
struct mailproc_line {
	enum mailproc_kind kind;
	bool warn;   /* EVENT */
	int64_t run; /* EVENT: the run the message is about, 0 if none */
	size_t sent; /* RESULT */
	size_t retried, given_up;
	char *msg; /* EVENT: the event; RESULT: the last error or NULL; ERROR: what went wrong */
};

/* The lines, each without its line end. Caller frees. */
char *mailproc_event_line(bool warn, int64_t run, const char *msg);
char *mailproc_result_line(size_t sent, size_t retried, size_t given_up, const char *last_error);
char *mailproc_error_line(const char *msg);
/* Parses LINE[0..LEN) into *OUT (mailproc_line_clear). 0, or -EINVAL for anything else. */
EPH_MUST_CHECK int mailproc_parse_line(const char *line, size_t len, struct mailproc_line *out);
void mailproc_line_clear(struct mailproc_line *l);

/* The path of eph-mail next to the running executable (as exec_local finds eph-agent), whether
 * or not it exists; NULL if the executable's own path is unknown. Caller frees. */
char *mailproc_path(void);

#endif
