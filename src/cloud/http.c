/* src/cloud/http.c: one HTTP request with libcurl. */
#include "cloud/http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "util/xalloc.h"

void
http_resp_init(struct http_resp *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->body, HTTP_MAX_BODY);
}

void
http_resp_free(struct http_resp *r)
{
	buf_free(&r->body);
	free(r->ratelimit_reset);
	free(r->retry_after);
	free(r->error);
	memset(r, 0, sizeof(*r));
}

struct xfer {
	struct http_resp *r;
	bool too_big;
};

static size_t
write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;

	if (buf_append(&x->r->body, p, size * n) != 0) {
		x->too_big = true;
		return 0; /* curl stops the transfer */
	}
	return size * n;
}

/* Keeps the value of header NAME from the line P (N bytes, "Name: value\r\n") into *SLOT. */
static void
keep_header(const char *p, size_t n, const char *name, char **slot)
{
	size_t len = strlen(name);
	size_t end;

	if (n <= len || strncasecmp(p, name, len) != 0 || p[len] != ':')
		return;
	p += len + 1;
	n -= len + 1;
	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	end = n;
	while (end > 0 && (p[end - 1] == '\r' || p[end - 1] == '\n' || p[end - 1] == ' '))
		end--;
	if (end > HTTP_MAX_HEADER)
		return;
	free(*slot);
	*slot = xstrndup(p, end);
}

static size_t
header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new answer (after a 100) */
		free(x->r->ratelimit_reset);
		free(x->r->retry_after);
		x->r->ratelimit_reset = x->r->retry_after = NULL;
	}
	keep_header(p, len, "ratelimit-reset", &x->r->ratelimit_reset);
	keep_header(p, len, "retry-after", &x->r->retry_after);
	return len;
}

int
http_request(const char *method, const char *url, const char *token, const char *body,
             double timeout_s, struct http_resp *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL, *h;
	char errbuf[CURL_ERROR_SIZE] = "";
	char *auth;
	struct xfer x = { .r = r };
	CURLcode cc;
	long ms = (long)(timeout_s * 1000);
	int rc = 0;

	if (c == NULL) {
		r->error = xstrdup("curl_easy_init failed");
		return -EIO;
	}
	if (ms < 1)
		ms = 1;
	auth = xasprintf("Authorization: Bearer %s", token);
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (body != NULL)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	if (hdrs == NULL) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
		curl_easy_cleanup(c);
		r->error = xstrdup("out of memory for headers");
		return -EIO;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ms < 10000 ? ms : 10000L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "ephemeron-eph-cloud/" EPH_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	cc = curl_easy_perform(c);
	if (x.too_big) {
		rc = -E2BIG;
	} else if (cc != CURLE_OK) {
		r->status = 0;
		r->error = xstrdup(errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
		r->unsent = cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_COULDNT_RESOLVE_PROXY ||
		            cc == CURLE_COULDNT_CONNECT;
		rc = -EIO;
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	}
	/* the token's copies: ours, and curl's list of headers */
	for (h = hdrs; h != NULL; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	explicit_bzero(auth, strlen(auth));
	free(auth);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}
