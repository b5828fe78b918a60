/* src/upload/s3.c: one PUT through libcurl, signed by CURLOPT_AWS_SIGV4. */
#include "upload/s3.h"

#include <errno.h>
#include <nettle/sha2.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "util/buf.h"
#include "util/redact.h"
#include "util/xalloc.h"

#define S3_CONNECT_TIMEOUT 10L        /* seconds to connect */
#define S3_LOW_SPEED_LIMIT 1024L      /* bytes/s: a transfer slower than this ... */
#define S3_LOW_SPEED_TIME  60L        /* ... for this many seconds is abandoned (tried later) */
#define S3_BODY_MAX        (8u << 10) /* bytes of an error reply kept */
#define S3_READ_CHUNK      (64u << 10)

struct s3 {
	CURL *easy;
	char *endpoint;
	char *sigv4; /* "aws:amz:REGION:s3" */
	char *access, *secret;
	int (*tick)(void *arg); /* called every S3_TICK_S while a put goes on */
	void *tick_arg;
	struct timespec last_tick;
	bool tick_abort; /* the tick asked to abandon the put going on */
};

/* One put: the file being sent and the reply being kept. */
struct s3_put {
	int fd;
	uint64_t left;
	int read_errno;
	struct buf body;
};

static volatile sig_atomic_t s3_stopping;

void
s3_stop(void)
{
	s3_stopping = 1;
}

bool
s3_stopped(void)
{
	return s3_stopping != 0;
}

void
s3_set_tick(struct s3 *c, int (*fn)(void *arg), void *arg)
{
	c->tick = fn;
	c->tick_arg = arg;
}

static double
mono_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static int
progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct s3 *c = arg;

	if (c->tick != NULL && mono_since(&c->last_tick) >= S3_TICK_S) {
		clock_gettime(CLOCK_MONOTONIC, &c->last_tick);
		if (c->tick(c->tick_arg) != 0)
			c->tick_abort = true;
	}
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return s3_stopping || c->tick_abort ? 1 : 0;
}

int
s3_new(const char *endpoint, const char *region, const char *access, const char *secret,
       struct s3 **out)
{
	struct s3 *c;

	*out = NULL;
	c = xcalloc(1, sizeof(*c));
	if ((c->easy = curl_easy_init()) == NULL) {
		free(c);
		return -ENOMEM;
	}
	c->endpoint = xstrdup(endpoint);
	c->sigv4 = xasprintf("aws:amz:%s:s3", region);
	c->access = xstrdup(access);
	c->secret = xstrdup(secret);
	*out = c;
	return 0;
}

void
s3_free(struct s3 *c)
{
	if (c == NULL)
		return;
	curl_easy_cleanup(c->easy);
	explicit_bzero(c->access, strlen(c->access));
	explicit_bzero(c->secret, strlen(c->secret));
	free(c->access);
	free(c->secret);
	free(c->endpoint);
	free(c->sigv4);
	free(c);
}

char *
s3_key_encode(const char *key)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(key);
	char *out = xmalloc(3 * n + 1), *o = out;

	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
		    *p == '/') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

/* The SHA-256 of FD's bytes from offset 0, as 64 hex digits into HEX. 0 or -errno. */
static int
sha256_fd(int fd, char hex[2 * SHA256_DIGEST_SIZE + 1])
{
	struct sha256_ctx ctx;
	uint8_t dig[SHA256_DIGEST_SIZE];
	char *chunk = xmalloc(S3_READ_CHUNK);
	off_t off = 0;
	ssize_t n;
	int rc = 0;

	sha256_init(&ctx);
	for (;;) {
		n = pread(fd, chunk, S3_READ_CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		sha256_update(&ctx, (size_t)n, (const uint8_t *)chunk);
		off += n;
	}
	free(chunk);
	if (rc < 0)
		return rc;
	sha256_digest(&ctx, SHA256_DIGEST_SIZE, dig);
	for (size_t i = 0; i < SHA256_DIGEST_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", dig[i]);
	return 0;
}

static size_t
read_cb(char *out, size_t size, size_t nmemb, void *arg)
{
	struct s3_put *p = arg;
	size_t want = size * nmemb;
	ssize_t n;

	if ((uint64_t)want > p->left)
		want = (size_t)p->left;
	if (want == 0)
		return 0;
	do
		n = read(p->fd, out, want);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		p->read_errno = errno;
		return CURL_READFUNC_ABORT;
	}
	if (n == 0) {
		p->read_errno = EIO; /* the file shrank under us */
		return CURL_READFUNC_ABORT;
	}
	p->left -= (uint64_t)n;
	return (size_t)n;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct s3_put *p = arg;

	if (buf_append(&p->body, data, size * nmemb) < 0)
		return size * nmemb; /* past the cap: the rest is dropped */
	return size * nmemb;
}

/* The text between <TAG> and </TAG> in the reply P, or NULL. Caller frees. */
static char *
xml_field(const struct s3_put *p, const char *tag)
{
	char *open = xasprintf("<%s>", tag), *close = xasprintf("</%s>", tag), *res = NULL;
	const char *s = buf_cstr((struct buf *)&p->body), *a, *b;

	if (s != NULL && (a = strstr(s, open)) != NULL &&
	    (b = strstr(a + strlen(open), close)) != NULL) {
		a += strlen(open);
		res = xstrndup(a, (size_t)(b - a));
		for (char *c = res; *c != '\0'; c++)
			if ((unsigned char)*c < ' ')
				*c = ' ';
	}
	free(open);
	free(close);
	return res;
}

/* Whether HTTP status ST with the store's CODE is worth trying again later. */
static bool
status_transient(long st, const char *code)
{
	if (st >= 500 || st == 408 || st == 429 || st == 0)
		return true;
	return code != NULL &&
	       (strcmp(code, "RequestTimeout") == 0 || strcmp(code, "SlowDown") == 0 ||
	        strcmp(code, "RequestTimeTooSkewed") == 0);
}

enum s3_outcome
s3_put_fd(struct s3 *c, const char *bucket, const char *key, int fd, uint64_t size, char **why)
{
	char sha[2 * SHA256_DIGEST_SIZE + 1], errbuf[CURL_ERROR_SIZE] = "", *hdr, *ekey, *url;
	char *code = NULL, *msg = NULL;
	struct s3_put p = { fd, size, 0, { 0 } };
	struct curl_slist *h = NULL, *h2;
	enum s3_outcome res;
	CURLcode cc;
	long status = 0;
	int rc;

	*why = NULL;
	if (s3_stopping) {
		*why = xstrdup("stopped");
		return S3_RETRY;
	}
	if ((rc = sha256_fd(fd, sha)) < 0) {
		*why = xasprintf("cannot read the file: %s", strerror(-rc));
		return S3_RETRY;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		*why = xasprintf("cannot read the file: %s", strerror(errno));
		return S3_RETRY;
	}
	buf_init(&p.body, S3_BODY_MAX);
	ekey = s3_key_encode(key);
	url = xasprintf("%s/%s/%s", c->endpoint, bucket, ekey);
	hdr = xasprintf("x-amz-content-sha256: %s", sha);
	if ((h = curl_slist_append(NULL, hdr)) == NULL ||
	    (h2 = curl_slist_append(h, "Content-Type: application/octet-stream")) == NULL) {
		*why = xstrdup("out of memory for the request's headers");
		res = S3_RETRY;
		goto out;
	}
	h = h2;
	curl_easy_reset(c->easy); /* the connection stays in the handle's cache */
	curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, errbuf);
	/* what keeps the keys off other hosts and the request signed: a libcurl that cannot
	 * do them sends nothing (and no redirect is followed: FOLLOWLOCATION stays off) */
	if (curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(c->easy, CURLOPT_AWS_SIGV4, c->sigv4) != CURLE_OK ||
	    curl_easy_setopt(c->easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK) {
		*why = xstrdup("this libcurl cannot sign requests (CURLOPT_AWS_SIGV4, libcurl "
		               "7.85 or later)");
		res = S3_REFUSED;
		goto out;
	}
	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c->easy, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(c->easy, CURLOPT_READDATA, &p);
	curl_easy_setopt(c->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, &p);
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->easy, CURLOPT_USERNAME, c->access);
	curl_easy_setopt(c->easy, CURLOPT_PASSWORD, c->secret);
	curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT, S3_CONNECT_TIMEOUT);
	curl_easy_setopt(c->easy, CURLOPT_LOW_SPEED_LIMIT, S3_LOW_SPEED_LIMIT);
	curl_easy_setopt(c->easy, CURLOPT_LOW_SPEED_TIME, S3_LOW_SPEED_TIME);
	curl_easy_setopt(c->easy, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(c->easy, CURLOPT_XFERINFODATA, c);
	clock_gettime(CLOCK_MONOTONIC, &c->last_tick);
	c->tick_abort = false;
	curl_easy_setopt(c->easy, CURLOPT_NOPROGRESS, 0L);
	cc = curl_easy_perform(c->easy);
	(void)curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_OK && status >= 200 && status < 300) {
		res = S3_OK;
	} else if (cc != CURLE_OK) {
		res = S3_RETRY;
		if (s3_stopping)
			*why = xstrdup("stopped");
		else if (c->tick_abort)
			*why = xstrdup("abandoned");
		else if (p.read_errno != 0)
			*why = xasprintf("cannot read the file: %s", strerror(p.read_errno));
		else
			*why = xasprintf("%s: %s", c->endpoint,
			                 errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
	} else {
		code = xml_field(&p, "Code");
		msg = xml_field(&p, "Message");
		res = status_transient(status, code) ? S3_RETRY : S3_REFUSED;
		*why = xasprintf("%s said %ld%s%s%s%s", c->endpoint, status,
		                 code != NULL ? " " : "", code != NULL ? code : "",
		                 msg != NULL ? ": " : "", msg != NULL ? msg : "");
	}
out:
	if (*why != NULL) { /* a server that would echo a key: not into a record or a mail */
		char *a = redact_value(*why, c->access, "[access_key]");

		free(*why);
		*why = redact_value(a, c->secret, "[secret_key]");
		free(a);
	}
	/* the handle outlives this call: nothing of it may point into our frame (the error
	 * buffer, P) or our header list, and it keeps no copy of the keys between puts */
	curl_easy_reset(c->easy);
	curl_slist_free_all(h);
	buf_free(&p.body);
	free(code);
	free(msg);
	free(hdr);
	free(url);
	free(ekey);
	return res;
}
