/* src/remote/remote.c: hosts, quoting, ssh's argv and environment, known_hosts, and how an
 * ssh failure reads. No I/O but reading known_hosts and stat(2). */
#include "remote/remote.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/sha1.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/fsio.h"
#include "util/xalloc.h"

extern char **environ;

static void
remote_host_error(struct diag *d, struct diag_pos at, size_t off, const char *text, const char *msg)
{
	struct diag_pos p = at;

	if (p.col > 0)
		p.col += (int)off;
	diag_error(d, p, "host \"%s\": %s", text, msg);
}

/* A user name: letters, digits, '.', '_', '-', not starting with '-'. */
static bool
remote_user_ok(const char *s, size_t n)
{
	if (n == 0 || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) == NULL)
			return false;
	return true;
}

/* A host name or an IPv4 address: letters, digits, '.', '-', '_', not starting with '-'. */
static bool
remote_name_ok(const char *s, size_t n)
{
	if (n == 0 || s[0] == '-' || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr(".-_", s[i]) == NULL)
			return false;
	return true;
}

int
remote_host_parse(const char *text, struct diag_pos at, struct remote_host *out, struct diag *d)
{
	const char *at_sign, *a, *port = NULL, *end;
	size_t before = diag_nerrors(d);
	char *addr = NULL;

	memset(out, 0, sizeof(*out));
	out->port = REMOTE_PORT_DEFAULT;
	if (text == NULL || text[0] == '\0') {
		diag_error(d, at, "host is empty: write [user@]addr[:port]");
		return -EINVAL;
	}
	if (strlen(text) > REMOTE_MAX_HOST) {
		diag_error(d, at, "host is longer than %u bytes", REMOTE_MAX_HOST);
		return -EINVAL;
	}
	end = text + strlen(text);
	at_sign = strrchr(text, '@');
	a = text;
	if (at_sign != NULL) {
		if (!remote_user_ok(text, (size_t)(at_sign - text)))
			remote_host_error(
			        d, at, 0, text,
			        "the user name may hold only letters, digits, '.', '_' and "
			        "'-', and not start with '-'");
		else
			out->user = xstrndup(text, (size_t)(at_sign - text));
		a = at_sign + 1;
	}
	if (*a == '[') {
		const char *close = strchr(a, ']');
		struct in6_addr in6;

		if (close == NULL) {
			remote_host_error(d, at, (size_t)(a - text), text, "no ']' after '['");
			goto out;
		}
		addr = xstrndup(a + 1, (size_t)(close - a - 1));
		if (inet_pton(AF_INET6, addr, &in6) != 1)
			remote_host_error(d, at, (size_t)(a + 1 - text), text,
			                  "not an IPv6 address between the brackets");
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			remote_host_error(d, at, (size_t)(close + 1 - text), text,
			                  "only \":port\" may follow ']'");
	} else {
		const char *colon = strchr(a, ':');

		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			remote_host_error(
			        d, at, (size_t)(a - text), text,
			        "an IPv6 address goes in brackets: [addr] or [addr]:port");
			goto out;
		}
		addr = xstrndup(a, (size_t)((colon != NULL ? colon : end) - a));
		if (addr[0] == '\0')
			remote_host_error(d, at, (size_t)(a - text), text, "no address");
		else if (!remote_name_ok(addr, strlen(addr)))
			remote_host_error(
			        d, at, (size_t)(a - text), text,
			        "the address may hold only letters, digits, '.', '-' and '_', "
			        "and not start with '-' or '.'");
		if (colon != NULL)
			port = colon + 1;
	}
	if (port != NULL) {
		long v = 0;
		const char *p = port;

		while (*p >= '0' && *p <= '9' && v <= 65535)
			v = v * 10 + (*p++ - '0');
		if (p == port || *p != '\0' || v < 1 || v > 65535)
			remote_host_error(d, at, (size_t)(port - text), text,
			                  "the port must be a number from 1 to 65535");
		else
			out->port = (int)v;
	}
out:
	if (diag_nerrors(d) > before) {
		free(addr);
		remote_host_clear(out);
		return -EINVAL;
	}
	out->addr = addr;
	return 0;
}

void
remote_host_clear(struct remote_host *h)
{
	if (h == NULL)
		return;
	free(h->user);
	free(h->addr);
	memset(h, 0, sizeof(*h));
}

char *
remote_host_str(const struct remote_host *h)
{
	bool v6 = strchr(h->addr, ':') != NULL;
	struct buf b;

	buf_init(&b, BUF_MAX_MSG);
	if ((h->user != NULL && buf_printf(&b, "%s@", h->user) < 0) ||
	    buf_printf(&b, v6 ? "[%s]" : "%s", h->addr) < 0 ||
	    (h->port != REMOTE_PORT_DEFAULT && buf_printf(&b, ":%d", h->port) < 0))
		abort(); /* REMOTE_MAX_HOST keeps it far below the cap */
	return buf_steal(&b);
}

char *
remote_host_known_name(const struct remote_host *h)
{
	if (h->port == REMOTE_PORT_DEFAULT)
		return xstrdup(h->addr);
	return xasprintf("[%s]:%d", h->addr, h->port);
}

char *
remote_quote(const char *s)
{
	struct buf b;

	buf_init(&b, BUF_MAX_UNLIMITED);
	if (buf_putc(&b, '\'') < 0)
		abort();
	for (; *s != '\0'; s++)
		if ((*s == '\'' ? buf_puts(&b, "'\\''") : buf_putc(&b, *s)) < 0)
			abort();
	if (buf_putc(&b, '\'') < 0)
		abort();
	return buf_steal(&b);
}

char *
remote_quote_path(const char *path)
{
	char *q, *r;

	if (strcmp(path, "~") == 0)
		return xstrdup("\"$HOME\"");
	if (strncmp(path, "~/", 2) != 0)
		return remote_quote(path);
	q = remote_quote(path + 2);
	r = xasprintf("\"$HOME\"/%s", q);
	free(q);
	return r;
}

static void
remote_argv_add(char ***v, size_t *n, char *s)
{
	*v = xreallocarray(*v, *n + 2, sizeof(**v));
	(*v)[(*n)++] = s;
	(*v)[*n] = NULL;
}

static void
remote_argv_opt(char ***v, size_t *n, char *opt)
{
	remote_argv_add(v, n, xstrdup("-o"));
	remote_argv_add(v, n, opt);
}

char **
remote_argv(const struct remote_ssh *s, const struct remote_host *h, const char *ctl,
            const char *command)
{
	char **v = NULL;
	size_t n = 0;

	remote_argv_add(&v, &n, xstrdup(s->program != NULL ? s->program : "ssh"));
	/* no user's or system's ssh_config: every option is ours */
	remote_argv_add(&v, &n, xstrdup("-F"));
	remote_argv_add(&v, &n, xstrdup("/dev/null"));
	remote_argv_opt(&v, &n, xstrdup("BatchMode=yes"));
	remote_argv_opt(&v, &n, xstrdup("StrictHostKeyChecking=yes"));
	remote_argv_opt(&v, &n,
	                xasprintf("UserKnownHostsFile=%s",
	                          s->known_hosts != NULL ? s->known_hosts : "/dev/null"));
	remote_argv_opt(&v, &n, xstrdup("GlobalKnownHostsFile=/dev/null"));
	remote_argv_opt(&v, &n, xstrdup("UpdateHostKeys=no"));
	remote_argv_opt(&v, &n, xstrdup("CheckHostIP=no"));
	remote_argv_opt(&v, &n, xstrdup("IdentitiesOnly=yes"));
	remote_argv_opt(&v, &n, xstrdup("IdentityAgent=none"));
	remote_argv_opt(&v, &n, xstrdup("ClearAllForwardings=yes"));
	/* ssh's notices ("ControlSocket ... already exists", "Permanently added") stay out of the
	 * command's stderr; its errors, which remote_classify reads, are kept */
	remote_argv_opt(&v, &n, xstrdup("LogLevel=ERROR"));
	if (s->identity_file != NULL) {
		remote_argv_add(&v, &n, xstrdup("-i"));
		remote_argv_add(&v, &n, xstrdup(s->identity_file));
	} else {
		remote_argv_opt(&v, &n, xstrdup("IdentityFile=none"));
	}
	remote_argv_opt(
	        &v, &n,
	        xasprintf("ConnectTimeout=%d", s->connect_timeout > 0 ? s->connect_timeout : 10));
	remote_argv_opt(
	        &v, &n,
	        xasprintf("ServerAliveInterval=%d", s->alive_interval > 0 ? s->alive_interval : 5));
	remote_argv_opt(
	        &v, &n,
	        xasprintf("ServerAliveCountMax=%d", s->alive_count > 0 ? s->alive_count : 3));
	if (s->control_dir != NULL) {
		remote_argv_opt(&v, &n, xstrdup("ControlMaster=auto"));
		remote_argv_opt(&v, &n, xasprintf("ControlPath=%s/%%C", s->control_dir));
		remote_argv_opt(&v, &n,
		                xasprintf("ControlPersist=%d", s->persist > 0 ? s->persist : 600));
	} else {
		remote_argv_opt(&v, &n, xstrdup("ControlMaster=no"));
		remote_argv_opt(&v, &n, xstrdup("ControlPath=none"));
	}
	remote_argv_add(&v, &n, xstrdup("-p"));
	remote_argv_add(&v, &n, xasprintf("%d", h->port));
	if (h->user != NULL) {
		remote_argv_add(&v, &n, xstrdup("-l"));
		remote_argv_add(&v, &n, xstrdup(h->user));
	}
	if (ctl != NULL) {
		remote_argv_add(&v, &n, xstrdup("-O"));
		remote_argv_add(&v, &n, xstrdup(ctl));
	} else {
		remote_argv_add(&v, &n, xstrdup("-T")); /* no terminal: bytes pass unchanged */
	}
	remote_argv_add(&v, &n, xstrdup("--"));
	remote_argv_add(&v, &n, xstrdup(h->addr));
	if (command != NULL && ctl == NULL)
		remote_argv_add(&v, &n, xstrdup(command));
	return v;
}

void
remote_argv_free(char **argv)
{
	if (argv == NULL)
		return;
	for (char **p = argv; *p != NULL; p++)
		free(*p);
	free(argv);
}

char **
remote_env(char *const *env)
{
	static const char *const drop[] = { "SSH_AUTH_SOCK=", "SSH_AGENT_PID=", "SSH_ASKPASS=",
		                            "SSH_ASKPASS_REQUIRE=", "DISPLAY=" };
	char **v;
	size_t n = 0, k = 0;

	if (env == NULL)
		env = environ;
	while (env[n] != NULL)
		n++;
	v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		bool skip = false;

		for (size_t j = 0; j < EPH_ARRAY_LEN(drop) && !skip; j++)
			skip = strncmp(env[i], drop[j], strlen(drop[j])) == 0;
		if (!skip)
			v[k++] = env[i];
	}
	return v;
}

int
remote_check_files(const struct remote_ssh *s, struct diag_pos at, struct diag *d)
{
	size_t before = diag_nerrors(d);
	struct stat st;

	if (s->known_hosts == NULL) {
		diag_error(d, at, "known_hosts is required: host keys are pinned, never learned");
	} else if (stat(s->known_hosts, &st) < 0) {
		diag_error(d, at, "known_hosts %s: %s", s->known_hosts, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		diag_error(d, at, "known_hosts %s is not a file", s->known_hosts);
	} else if ((st.st_mode & 022) != 0) {
		diag_error(d, at,
		           "known_hosts %s can be written by others (mode %04o): anyone who can "
		           "write it can pin their own host key; chmod go-w it",
		           s->known_hosts, (unsigned)(st.st_mode & 07777));
	} else if (st.st_uid != 0 && st.st_uid != geteuid()) {
		diag_error(d, at, "known_hosts %s belongs to another user (uid %u)", s->known_hosts,
		           (unsigned)st.st_uid);
	} else if (access(s->known_hosts, R_OK) < 0) {
		diag_error(d, at, "known_hosts %s: %s", s->known_hosts, strerror(errno));
	}
	if (s->identity_file != NULL) {
		if (stat(s->identity_file, &st) < 0)
			diag_error(d, at, "identity_file %s: %s", s->identity_file,
			           strerror(errno));
		else if (!S_ISREG(st.st_mode))
			diag_error(d, at, "identity_file %s is not a file", s->identity_file);
		else if ((st.st_mode & 077) != 0)
			diag_error(
			        d, at,
			        "identity_file %s can be read or written by others (mode %04o): a "
			        "private key is a secret; chmod 600 it",
			        s->identity_file, (unsigned)(st.st_mode & 07777));
		else if (access(s->identity_file, R_OK) < 0)
			diag_error(d, at, "identity_file %s: %s", s->identity_file,
			           strerror(errno));
	}
	if (s->control_dir != NULL && strlen(s->control_dir) > REMOTE_CONTROL_DIR_MAX)
		diag_error(
		        d, at,
		        "the ssh control directory %s is longer than %d bytes: its sockets' paths "
		        "would not fit a socket address (108 bytes)",
		        s->control_dir, REMOTE_CONTROL_DIR_MAX);
	return diag_nerrors(d) > before ? -EINVAL : 0;
}

/* ssh's match_pattern: '*' any run, '?' one character, case-insensitive. */
static bool
remote_wild(const char *p, const char *pe, const char *s, const char *se)
{
	while (p < pe) {
		if (*p == '*') {
			for (const char *t = s; t <= se; t++)
				if (remote_wild(p + 1, pe, t, se))
					return true;
			return false;
		}
		if (s == se)
			return false;
		if (*p != '?' && tolower((unsigned char)*p) != tolower((unsigned char)*s))
			return false;
		p++;
		s++;
	}
	return s == se;
}

/* Decodes base64 [S, E) into OUT (at most CAP bytes); the length, or -1. */
static long
remote_b64(const char *s, const char *e, uint8_t *out, size_t cap)
{
	struct base64_decode_ctx ctx;
	size_t n = cap;

	if ((size_t)(e - s) > BASE64_ENCODE_LENGTH(cap) + 4)
		return -1;
	base64_decode_init(&ctx);
	if (!base64_decode_update(&ctx, &n, out, (size_t)(e - s), s) || !base64_decode_final(&ctx))
		return -1;
	return (long)n;
}

/* Does the hashed field "|1|salt|hash" [S, E) stand for NAME? */
static bool
remote_hashed_match(const char *s, const char *e, const char *name)
{
	uint8_t salt[64], hash[64], mac[SHA1_DIGEST_SIZE];
	const char *bar = memchr(s + 3, '|', (size_t)(e - s - 3));
	struct hmac_sha1_ctx ctx;
	long ns, nh;

	if (bar == NULL)
		return false;
	ns = remote_b64(s + 3, bar, salt, sizeof(salt));
	nh = remote_b64(bar + 1, e, hash, sizeof(hash));
	if (ns != SHA1_DIGEST_SIZE || nh != SHA1_DIGEST_SIZE)
		return false;
	hmac_sha1_set_key(&ctx, (size_t)ns, salt);
	hmac_sha1_update(&ctx, strlen(name), (const uint8_t *)name);
	hmac_sha1_digest(&ctx, sizeof(mac), mac);
	return memcmp(mac, hash, sizeof(mac)) == 0;
}

/* Does the host field [S, E) of one line name NAME? */
static bool
remote_field_match(const char *s, const char *e, const char *name)
{
	bool yes = false;

	if (e - s > 3 && memcmp(s, "|1|", 3) == 0)
		return remote_hashed_match(s, e, name);
	while (s < e) {
		const char *c = memchr(s, ',', (size_t)(e - s)), *pe = c != NULL ? c : e;
		bool neg = *s == '!';

		if (remote_wild(s + neg, pe, name, name + strlen(name))) {
			if (neg)
				return false;
			yes = true;
		}
		s = pe + 1;
	}
	return yes;
}

bool
remote_known_match(const char *text, size_t len, const struct remote_host *h)
{
	char *name = remote_host_known_name(h);
	const char *p = text, *end = text + len;
	bool found = false;

	for (char *c = name; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c); /* as ssh looks it up */
	while (p < end && !found) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl != NULL ? nl : end;
		const char *f = p, *fe;

		p = nl != NULL ? nl + 1 : end;
		while (f < le && (*f == ' ' || *f == '\t'))
			f++;
		if (f == le || *f == '#')
			continue;
		if (*f == '@') {
			bool revoked = le - f >= 8 && memcmp(f, "@revoked", 8) == 0;

			while (f < le && *f != ' ' && *f != '\t')
				f++;
			if (revoked)
				continue;
			while (f < le && (*f == ' ' || *f == '\t'))
				f++;
		}
		fe = f;
		while (fe < le && *fe != ' ' && *fe != '\t')
			fe++;
		if (fe == le || fe == f) /* no key after the names */
			continue;
		found = remote_field_match(f, fe, name);
	}
	free(name);
	return found;
}

int
remote_known_has(const char *path, const struct remote_host *h)
{
	struct buf b;
	int rc;

	buf_init(&b, REMOTE_MAX_KNOWN);
	rc = fsio_read_file(path, &b);
	if (rc == 0)
		rc = remote_known_match(b.data != NULL ? b.data : "", b.len, h) ? 1 : 0;
	buf_free(&b);
	return rc;
}

int
remote_check_host(const struct remote_ssh *s, const struct remote_host *h, struct diag_pos at,
                  struct diag *d)
{
	char *host;
	int rc;

	if (s->known_hosts == NULL)
		return -EINVAL; /* remote_check_files says so, once */
	rc = remote_known_has(s->known_hosts, h);
	if (rc == 1)
		return 0;
	host = remote_host_str(h);
	if (rc == 0) {
		diag_error(d, at,
		           "host %s has no entry in known_hosts %s: add its key (ssh-keyscan -p %d "
		           "%s) and check its fingerprint out of band; keys are never learned",
		           host, s->known_hosts, h->port, h->addr);
		rc = -EINVAL;
	} else if (rc != -ENOENT && rc != -EACCES) { /* remote_check_files reports those */
		diag_error(d, at, "known_hosts %s: %s", s->known_hosts, strerror(-rc));
	}
	free(host);
	return rc;
}

const char *
remote_fail_name(enum remote_fail f)
{
	static const char *const names[] = {
		[REMOTE_OK] = "ok",
		[REMOTE_STATUS] = "status",
		[REMOTE_HOST_KEY] = "host key",
		[REMOTE_AUTH] = "auth",
		[REMOTE_UNREACHABLE] = "unreachable",
		[REMOTE_TIMEOUT] = "timeout",
		[REMOTE_SSH] = "ssh",
		[REMOTE_CANCELED] = "canceled",
		[REMOTE_SPAWN] = "spawn",
		[REMOTE_LOCAL] = "local",
	};

	return (size_t)f < EPH_ARRAY_LEN(names) ? names[f] : "?";
}

static bool
remote_says(const char *err, const char *const *what)
{
	for (; *what != NULL; what++)
		if (strstr(err, *what) != NULL)
			return true;
	return false;
}

enum remote_fail
remote_classify(int status, const char *err)
{
	static const char *const host_key[] = { "Host key verification failed",
		                                "REMOTE HOST IDENTIFICATION HAS CHANGED",
		                                "host key is known for", NULL };
	static const char *const auth[] = { "Permission denied", "Too many authentication failures",
		                            "No more authentication methods", NULL };
	static const char *const timeout[] = { "timed out", "not responding", NULL };
	static const char *const unreachable[] = {
		"Connection refused",          "No route to host",
		"Network is unreachable",      "Could not resolve",
		"Connection closed",           "Connection reset",
		"closed by remote host",       "Broken pipe",
		"kex_exchange_identification", NULL
	};

	if (status == 0)
		return REMOTE_OK;
	if (status != 255)
		return REMOTE_STATUS;
	if (err == NULL)
		return REMOTE_SSH;
	if (remote_says(err, host_key))
		return REMOTE_HOST_KEY;
	if (remote_says(err, auth))
		return REMOTE_AUTH;
	if (remote_says(err, timeout))
		return REMOTE_TIMEOUT;
	if (remote_says(err, unreachable))
		return REMOTE_UNREACHABLE;
	return REMOTE_SSH;
}

size_t
remote_strip_noise(char *err)
{
	char *w = err;

	for (const char *p = err; *p != '\0';) {
		const char *nl = strchr(p, '\n'), *e = nl != NULL ? nl + 1 : p + strlen(p);
		size_t n = (size_t)(e - p);
		bool noise = strncmp(p, "ControlSocket ", 14) == 0 &&
		             memmem(p, n, "disabling multiplexing", 22) != NULL;

		if (!noise) {
			memmove(w, p, n);
			w += n;
		}
		p = e;
	}
	*w = '\0';
	return (size_t)(w - err);
}

char *
remote_fingerprint(const char *err)
{
	const char *p = err != NULL ? strstr(err, "SHA256:") : NULL;
	size_t n = 7;

	if (p == NULL)
		return NULL;
	while (isalnum((unsigned char)p[n]) || p[n] == '+' || p[n] == '/' || p[n] == '=')
		n++;
	return n > 7 ? xstrndup(p, n) : NULL;
}

/* The last non-empty line of ERR, trimmed, at most 300 bytes; "" if none. Caller frees. */
static char *
remote_last_line(const char *err)
{
	const char *s = NULL, *e = NULL;

	for (const char *p = err != NULL ? err : ""; *p != '\0';) {
		const char *nl = strchr(p, '\n'), *le = nl != NULL ? nl : p + strlen(p);
		const char *a = p, *b = le;

		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		if (b > a)
			s = a, e = b;
		p = nl != NULL ? nl + 1 : le;
	}
	if (s == NULL)
		return xstrdup("");
	return xstrndup(s, (size_t)(e - s) > 300 ? 300 : (size_t)(e - s));
}

char *
remote_why(const char *host, enum remote_fail f, int status, const char *err)
{
	char *last = remote_last_line(err), *fp, *msg;

	switch (f) {
	case REMOTE_OK:
		msg = xasprintf("%s: ok", host);
		break;
	case REMOTE_STATUS:
		msg = *last != '\0'
		              ? xasprintf("%s: the command exited with status %d: %s", host, status,
		                          last)
		              : xasprintf("%s: the command exited with status %d", host, status);
		break;
	case REMOTE_HOST_KEY:
		fp = remote_fingerprint(err);
		msg = xasprintf("host key of %s is unknown or changed%s%s%s: nothing ran there",
		                host, fp != NULL ? " (it offered " : "", fp != NULL ? fp : "",
		                fp != NULL ? ")" : "");
		free(fp);
		break;
	case REMOTE_AUTH:
		msg = xasprintf("%s refused our key: %s", host, last);
		break;
	case REMOTE_UNREACHABLE:
		msg = xasprintf("%s is unreachable: %s", host, last);
		break;
	case REMOTE_TIMEOUT:
		msg = *last != '\0' ? xasprintf("%s did not answer in time: %s", host, last)
		                    : xasprintf("%s did not answer in time", host);
		break;
	case REMOTE_CANCELED:
		msg = xasprintf("%s: canceled", host);
		break;
	case REMOTE_SPAWN:
		msg = xasprintf("%s: cannot start ssh: %s", host, last);
		break;
	case REMOTE_LOCAL:
		msg = xasprintf("%s: a local file cannot be read: %s", host, last);
		break;
	case REMOTE_SSH:
	default:
		msg = *last != '\0' ? xasprintf("ssh to %s failed: %s", host, last)
		                    : xasprintf("ssh to %s failed with status %d", host, status);
		break;
	}
	free(last);
	return msg;
}
