/* src/notify/smtp.c: one SMTP transaction through libcurl. */
#include "notify/smtp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define SMTP_MAX_PASSWORD (4u << 10)

int
smtp_password(const struct conf_mail *m, char **out, struct diag *d)
{
	mode_t mode = 0;
	struct buf b;
	int rc;

	*out = NULL;
	if (m->username == NULL)
		return 0;
	if (m->password_env != NULL) {
		const char *v = getenv(m->password_env);

		if (v == NULL) {
			diag_error(d, (struct diag_pos){ 0 },
			           "mail.password_env: the variable %s is not set",
			           m->password_env);
			return -ENOENT;
		}
		*out = xstrdup(v);
		return 0;
	}
	if (m->password_file == NULL) {
		diag_error(d, (struct diag_pos){ 0 },
		           "mail.username needs mail.password_file or mail.password_env");
		return -EINVAL;
	}
	buf_init(&b, SMTP_MAX_PASSWORD);
	rc = fsio_read_private(m->password_file, &b, &mode);
	if (rc == -EPERM && (mode & 077) != 0) {
		diag_error(d, (struct diag_pos){ 0 },
		           "mail.password_file %s can be read by group or others (mode %04o); "
		           "refusing to use it: chmod 600 %s",
		           m->password_file, (unsigned)mode, m->password_file);
	} else if (rc < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "mail.password_file %s: %s", m->password_file,
		           rc == -E2BIG ? "too large for a password" : strerror(-rc));
	}
	if (rc < 0) {
		if (b.data != NULL)
			explicit_bzero(b.data, b.cap);
		buf_free(&b);
		return rc;
	}
	*out = xstrndup(buf_cstr(&b), strcspn(buf_cstr(&b), "\r\n"));
	explicit_bzero(b.data, b.cap);
	buf_free(&b);
	return 0;
}

static size_t
read_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct smtp_xfer *x = arg;
	size_t n = size * nmemb, left = x->len - x->off;

	if (n > left)
		n = left;
	memcpy(ptr, x->data + x->off, n);
	x->off += n;
	return n;
}

/* Keeps the server's replies (never what we sent: that holds the credentials). */
static int
debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	struct smtp_xfer *x = arg;

	(void)h;
	if (type != CURLINFO_HEADER_IN)
		return 0;
	while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
		size--;
	/* past SMTP_MAX_REPLY the rest of a reply is left out */
	if ((x->cur.len == 0 || buf_putc(&x->cur, '\n') == 0) &&
	    buf_append(&x->cur, data, size) < 0) {
		/* keep what fits */
	}
	/* "250-..." continues a reply; "250 ..." (or a bare code) ends it */
	if (size < 4 || data[3] != '-') {
		if (x->len > 0 && x->off == x->len && size >= 1 && data[0] == '2') {
			/* The server accepted the message. libcurl now sends QUIT and waits for
			 * the reply, blocking, up to the timeout: let the wait end at once. */
			if (x->fd != CURL_SOCKET_BAD)
				shutdown(x->fd, SHUT_RD);
		}
		buf_reset(&x->reply);
		if (x->cur.len > 0 && buf_append(&x->reply, x->cur.data, x->cur.len) < 0) {
			/* same cap: cannot happen */
		}
		buf_reset(&x->cur);
	}
	return 0;
}

/* Notes the connection's socket (one per transfer: reuse is forbidden). */
static int
sockopt_cb(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	struct smtp_xfer *x = arg;

	if (purpose == CURLSOCKTYPE_IPCXN)
		x->fd = fd;
	return CURL_SOCKOPT_OK;
}

int
smtp_xfer_init(struct smtp_xfer *x, const struct conf_mail *m, const char *password,
               const char *from, const char *rcpt, const char *data, size_t len, struct diag *d)
{
	long timeout = m->timeout > 0 ? (long)m->timeout : 60;
	CURLcode rc = CURLE_OK;
	CURL *e;

	memset(x, 0, sizeof(*x));
	x->fd = CURL_SOCKET_BAD;
	buf_init(&x->reply, SMTP_MAX_REPLY);
	buf_init(&x->cur, SMTP_MAX_REPLY);
	x->data = data;
	x->len = len;
	for (const char *p = rcpt; *p != '\0';) {
		size_t n = strcspn(p, "\n");

		if (n > 0) {
			char *a = xstrndup(p, n);
			struct curl_slist *l = curl_slist_append(x->rcpt, a);

			free(a);
			if (l == NULL)
				abort(); /* out of memory, as xmalloc */
			x->rcpt = l;
		}
		p += n;
		if (*p == '\n')
			p++;
	}
	x->easy = e = curl_easy_init();
	if (e == NULL)
		abort();
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(e, opt, val);                                        \
	} while (0)
	SET(CURLOPT_URL, m->smtp);
	SET(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_FORBID_REUSE, 1L); /* one session per message, ended with QUIT */
	SET(CURLOPT_MAIL_FROM, from);
	SET(CURLOPT_MAIL_RCPT, x->rcpt);
	SET(CURLOPT_UPLOAD, 1L);
	SET(CURLOPT_READFUNCTION, read_cb);
	SET(CURLOPT_READDATA, x);
	SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_DEBUGFUNCTION, debug_cb);
	SET(CURLOPT_DEBUGDATA, x);
	SET(CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
	SET(CURLOPT_SOCKOPTDATA, x);
	SET(CURLOPT_VERBOSE, 1L); /* only feeds debug_cb, which keeps the server's replies */
	SET(CURLOPT_CONNECTTIMEOUT, timeout < SMTP_MAX_CONNECT ? timeout : (long)SMTP_MAX_CONNECT);
	SET(CURLOPT_TIMEOUT, timeout);
	SET(CURLOPT_USE_SSL, m->starttls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_NONE);
	if (m->ca_file != NULL)
		SET(CURLOPT_CAINFO, m->ca_file);
	if (password != NULL) {
		SET(CURLOPT_USERNAME, m->username);
		SET(CURLOPT_PASSWORD, password);
	}
#undef SET
	if (rc != CURLE_OK) {
		diag_error(d, (struct diag_pos){ 0 }, "mail: libcurl refused a setting: %s",
		           curl_easy_strerror(rc));
		smtp_xfer_cleanup(x);
		return -EINVAL;
	}
	return 0;
}

char *
smtp_xfer_error(struct smtp_xfer *x, CURLcode res)
{
	const char *why = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(res);
	long code = 0;
	char *host = NULL, *s;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	{
		CURLU *u = curl_url();

		if (u != NULL) {
			char *url = NULL;

			if (curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK &&
			    url != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
				char *h = NULL;

				if (curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
					host = xstrdup(h);
					curl_free(h);
				}
			}
			curl_url_cleanup(u);
		}
	}
	if (code >= 400 && x->reply.len > 0)
		s = xasprintf("%s said: %s (%s)", host != NULL ? host : "the server",
		              buf_cstr(&x->reply), why);
	else if (code > 0 && x->reply.len > 0)
		s = xasprintf("%s (the server's last reply: %s)", why, buf_cstr(&x->reply));
	else
		s = xstrdup(why);
	free(host);
	return s;
}

void
smtp_xfer_cleanup(struct smtp_xfer *x)
{
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->rcpt);
	buf_free(&x->reply);
	buf_free(&x->cur);
	x->easy = NULL;
	x->rcpt = NULL;
}

double
smtp_backoff(int attempts)
{
	double d = 30;

	for (int i = 1; i < attempts && d < 3600; i++)
		d *= 2;
	return d > 3600 ? 3600 : d;
}
