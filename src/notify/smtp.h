/* src/notify/smtp.h: one SMTP transaction through libcurl, set up the same way for `eph mail
 * test` (curl_easy_perform, src/eph_mail.c) and for the sender's passes (several at once on a
 * curl multi handle, notify/sender.c); both run in eph-mail only, since neither eph nor the
 * daemon links curl (the daemon starts eph-mail: daemon/mailer.c): smtp:// with STARTTLS
 * required unless mail.starttls is false, smtps://, AUTH, ca_file, timeouts; and what the
 * server said when it fails. No credential is ever logged: the only protocol text kept is
 * what the server sent. */
#ifndef EPH_NOTIFY_SMTP_H
#define EPH_NOTIFY_SMTP_H
#include <stddef.h>

#include <curl/curl.h>

#include "util/attr.h"
#include "util/buf.h"

struct conf_mail;
struct diag;

#define SMTP_MAX_REPLY   (4u << 10) /* the server's last reply kept for messages */
#define SMTP_MAX_CONNECT 30         /* seconds: connect timeout, at most mail.timeout */

/* The password of M: the file mail.password_file (refused with -EPERM if group or others may
 * read it, mode & 077; its first line, without the line end) or the variable
 * mail.password_env (-ENOENT when unset). *OUT is NULL when M has no username (no AUTH).
 * Caller frees *OUT. On failure adds a message to D. */
EPH_MUST_CHECK int smtp_password(const struct conf_mail *m, char **out, struct diag *d);

/* One message's transaction. */
struct smtp_xfer {
	CURL *easy;
	struct curl_slist *rcpt;
	const char *data; /* borrowed: the message */
	size_t len, off;
	char errbuf[CURL_ERROR_SIZE];
	struct buf reply; /* the server's last reply (possibly multi-line), CRLF stripped */
	struct buf cur;   /* the reply being received */
	curl_socket_t fd; /* the connection's socket, CURL_SOCKET_BAD before it exists */
	void *arg;        /* the owner's */
};

/* Sets up X to send DATA[0..LEN) from FROM to RCPT (addresses, one a line) with the settings
 * of M and PASSWORD (NULL: no AUTH). 0, or -EINVAL (with a message in D) for settings curl
 * refuses. X borrows DATA until smtp_xfer_cleanup. */
EPH_MUST_CHECK int smtp_xfer_init(struct smtp_xfer *x, const struct conf_mail *m,
                                  const char *password, const char *from, const char *rcpt,
                                  const char *data, size_t len, struct diag *d);
/* What went wrong, for a person, after the transfer ended with RES (not CURLE_OK): the
 * server's reply code and text when it said something ("smtp.x.org said: 535 5.7.8
 * Authentication credentials invalid"), and curl's account. Caller frees. */
char *smtp_xfer_error(struct smtp_xfer *x, CURLcode res);
void smtp_xfer_cleanup(struct smtp_xfer *x); /* a zeroed X is fine */

/* The delay before attempt ATTEMPTS + 1 after ATTEMPTS failed ones: 30 s, doubling, at most
 * one hour. */
double smtp_backoff(int attempts);

#endif
