/* src/conf/conf_exec_ssh.c: the keys of an executor of type ssh (docs/jobs-file.md): its
 * hosts, the files ssh is run with (known_hosts, identity_file), its directory on the hosts
 * and its times. Read with its own tables, then checked as a whole, the files included: a
 * host with no entry in known_hosts is an error of the jobs file, as `eph validate` must say
 * (remote/remote.h's checks). Last, the checks a job on it owes: a pinned commit, since its
 * code travels as one, and a host that can hold its memory. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libfyaml.h>

#include "conf/conf_int.h"
#include "conf/conf_keys.h"
#include "remote/remote.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/units.h"
#include "util/xalloc.h"

#define SSH_DIR_DEFAULT "~/.ephemeron"
#define SSH_DIR_MAX     200  /* bytes of "dir": DIR/<instance>/runs/<id>/... go below it */
#define SSH_MAX_HOSTS   1000 /* hosts of one executor */
#define SIZE_MAX_       ((int64_t)UNITS_SIZE_MAX)
#define DUR_MAX         UNITS_DURATION_MAX

#define KEYS(arr) arr, EPH_ARRAY_LEN(arr)

/* The keys of ssh_keys that its special handler reads, by index. */
enum { SK_TYPE, SK_HOSTS, SK_IDENTITY, SK_KNOWN_HOSTS, SK_DIR };

static const struct conf_key ssh_keys[] = {
	[SK_TYPE] = { "type", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "required", "ssh" },
	[SK_HOSTS] = { "hosts", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "required",
	               "the servers: a list of {host: [user@]addr[:port], memory: SIZE}" },
	[SK_IDENTITY] = { "identity_file", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL,
	                  "none: ssh offers no key",
	                  "private key ssh logs in with; not readable by group or others" },
	[SK_KNOWN_HOSTS] = { "known_hosts", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "required",
	                     "the hosts' keys, pinned (OpenSSH's format): a host without an entry "
	                     "is an error; writable by its owner only" },
	[SK_DIR] = { "dir", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, SSH_DIR_DEFAULT,
	             "directory of the runs on each host: absolute, or ~/... (the login user's "
	             "home)" },
	{ "default_memory", CK_SIZE, K_OTHER, offsetof(struct conf_ssh, default_memory), 1 << 20,
	  SIZE_MAX_, NULL, "1GiB", "what a job without memory counts for on a host" },
	{ "lost_after", CK_DUR, K_OTHER, offsetof(struct conf_ssh, lost_after), 1, DUR_MAX, NULL,
	  "10m", "a host unreachable this long makes its runs lost" },
	{ "max_wait", CK_DUR, K_OTHER, offsetof(struct conf_ssh, max_wait), 1, DUR_MAX, NULL, "1h",
	  "a run waiting this long for a host with room fails (reason unplaced)" },
	{ "connect_timeout", CK_DUR, K_OTHER, offsetof(struct conf_ssh, connect_timeout), 1, 3600,
	  NULL, "10s", "longest ssh waits for a connection (ConnectTimeout)" },
	{ "price_monthly", CK_PRICE, K_OTHER, offsetof(struct conf_ssh, price_monthly), 0,
	  CONF_PRICE_MAX, NULL, "0", "what each host costs a month unless it says, for eph cost" },
};

enum { HK_HOST, HK_MEMORY };

static const struct conf_key host_keys[] = {
	[HK_HOST] = { "host", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "required",
	              "[user@]addr[:port], an IPv6 address in brackets" },
	[HK_MEMORY] = { "memory", CK_SIZE, K_OTHER, offsetof(struct conf_ssh_host, memory), 1 << 20,
	                SIZE_MAX_, NULL, "required",
	                "memory the runs on the host may use together" },
	{ "price_monthly", CK_PRICE, K_OTHER, offsetof(struct conf_ssh_host, price_monthly), 0,
	  CONF_PRICE_MAX, NULL, "the executor's price_monthly",
	  "what the host costs a month, for eph cost" },
};

const struct conf_section conf_sec_ssh = { "an ssh executor", KEYS(ssh_keys) };
const struct conf_section conf_sec_ssh_host = { "a host", KEYS(host_keys) };

/* An ssh executor being read: its settings, and where its values stand (line 0: not
 * written). */
struct ssh_build {
	struct conf_ssh *s;
	struct conf_generic_arg g;
	struct diag_pos known_at, identity_at;
	bool hosts_written;
};

/* A host being read. */
struct host_build {
	struct conf_ssh_host h;
	struct conf_generic_arg g;
	bool host_written, memory_written;
};

/* Moves the problems of TMP into P (each through conf_err, at its own place, or at AT when it
 * has none), and empties TMP. Returns how many. */
static size_t
forward(struct pctx *p, struct diag *tmp, struct diag_pos at)
{
	size_t n = tmp->n;

	for (size_t i = 0; i < tmp->n; i++) {
		struct diag_pos ia = { p->file, tmp->items[i].line, tmp->items[i].col };

		conf_err(p, ia.line > 0 ? ia : at, "%s", tmp->items[i].msg);
	}
	diag_free(tmp);
	diag_init(tmp);
	return n;
}

/* Whether S holds a control character (a newline among them). */
static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* "host": parsed as [user@]addr[:port]; its errors at their columns. */
static void
host_value(struct pctx *p, struct host_build *hb, struct fy_node *key, struct fy_node *v)
{
	struct diag_pos at = conf_pos_or(p, v, conf_pos(p, key));
	struct diag tmp;
	char *s;

	hb->host_written = true;
	if ((s = conf_get_str(p, "host", v, conf_pos(p, key))) == NULL)
		return;
	diag_init(&tmp);
	if (remote_host_parse(s, at, &hb->h.host, &tmp) < 0) {
		if (forward(p, &tmp, at) == 0)
			conf_err(p, at, "bad host: write [user@]addr[:port]");
		free(s);
	} else {
		free(hb->h.text);
		hb->h.text = s;
		hb->h.line = at.line;
		hb->h.col = at.col;
	}
	diag_free(&tmp);
}

static void
host_special(struct pctx *p, const struct conf_key *ck, struct fy_node *key, struct fy_node *v,
             void *arg)
{
	(void)ck; /* "host" is its one special key */
	host_value(p, arg, key, v);
}

static void
host_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
          void *arg)
{
	struct host_build *hb = arg;

	if (klen == 6 && memcmp(k, "memory", 6) == 0)
		hb->memory_written = true;
	if (klen == 13 && memcmp(k, "price_monthly", 13) == 0)
		hb->h.price_set = true;
	conf_generic_pair(p, key, k, klen, v, &hb->g);
}

/* Whether A and B name the same place: the same user (none is its own), the same port and
 * the same address (a name without regard to case, an IPv6 address by its value). */
static bool
same_host(const struct remote_host *a, const struct remote_host *b)
{
	struct in6_addr x, y;

	if ((a->user == NULL) != (b->user == NULL) ||
	    (a->user != NULL && strcmp(a->user, b->user) != 0) || a->port != b->port)
		return false;
	if (inet_pton(AF_INET6, a->addr, &x) == 1 && inet_pton(AF_INET6, b->addr, &y) == 1)
		return memcmp(&x, &y, sizeof(x)) == 0;
	return strcasecmp(a->addr, b->addr) == 0;
}

/* One item of "hosts" (IV, at IAT), added to S when it has no fault. */
static void
host_item(struct pctx *p, struct conf_ssh *s, struct fy_node *iv, struct diag_pos iat)
{
	struct host_build hb;
	size_t before = conf_nerrors(p);

	memset(&hb, 0, sizeof(hb));
	hb.g = (struct conf_generic_arg){ &conf_sec_ssh_host, &hb.h, host_special, &hb };
	conf_map_walk(p, iv, host_pair, &hb);
	if (p->halted)
		goto drop;
	if (!hb.host_written)
		conf_err(p, iat, "a host needs \"host\": [user@]addr[:port]");
	if (!hb.memory_written)
		conf_err(p, iat,
		         "a host needs \"memory\": what the runs on it may use together (4GiB)");
	if (conf_nerrors(p) != before)
		goto drop;
	for (size_t i = 0; i < s->nhosts; i++) {
		if (same_host(&s->hosts[i].host, &hb.h.host)) {
			char *q = conf_quote(hb.h.text, strlen(hb.h.text));

			conf_err(p, (struct diag_pos){ p->file, hb.h.line, hb.h.col },
			         "host %s is listed twice (first on line %d)", q, s->hosts[i].line);
			free(q);
			goto drop;
		}
	}
	s->hosts = xreallocarray(s->hosts, s->nhosts + 1, sizeof(*s->hosts));
	s->hosts[s->nhosts++] = hb.h;
	return;
drop:
	free(hb.h.text);
	remote_host_clear(&hb.h.host);
}

/* "hosts": a non-empty list of {host, memory}. */
static void
hosts_value(struct pctx *p, struct ssh_build *b, struct fy_node *key, struct fy_node *v)
{
	struct diag_pos keyat = conf_pos(p, key);
	struct fy_node *item;
	void *it = NULL;

	b->hosts_written = true;
	if (v == NULL || !fy_node_is_sequence(v)) {
		conf_err(
		        p, conf_pos_or(p, v, keyat),
		        "\"hosts\" must be a list of {host: [user@]addr[:port], memory: SIZE}, not %s",
		        conf_node_kind(v));
		return;
	}
	if (fy_node_sequence_item_count(v) == 0) {
		conf_err(p, conf_pos_or(p, v, keyat),
		         "\"hosts\" is an empty list: an ssh executor needs at least one host");
		return;
	}
	while ((item = fy_node_sequence_iterate(v, &it)) != NULL) {
		struct diag_pos iat = conf_pos_or(p, item, keyat);
		struct fy_node *iv;

		if (!conf_visit(p, item))
			return;
		if ((iv = conf_deref(p, item)) == NULL)
			continue;
		if (!fy_node_is_mapping(iv)) {
			conf_err(
			        p, iat,
			        "each item of \"hosts\" must be a mapping {host: [user@]addr[:port], memory: SIZE}, not %s",
			        conf_node_kind(iv));
			continue;
		}
		if (b->s->nhosts == SSH_MAX_HOSTS) {
			conf_err(p, iat, "more than %d hosts", SSH_MAX_HOSTS);
			return;
		}
		host_item(p, b->s, iv, iat);
		if (p->halted)
			return;
	}
}

/* A file of this machine (identity_file, known_hosts): absolute, or relative to the jobs
 * file's directory; into *DST, its value's place into *AT. */
static void
path_value(struct pctx *p, const char *name, struct fy_node *key, struct fy_node *v, char **dst,
           struct diag_pos *at)
{
	char *s;

	*at = conf_pos_or(p, v, conf_pos(p, key));
	if ((s = conf_get_str(p, name, v, conf_pos(p, key))) == NULL)
		return;
	if (conf_blank(s)) {
		conf_err(p, *at, "\"%s\" is only whitespace", name);
	} else if (has_control(s)) {
		conf_err(p, *at, "\"%s\" holds a control character", name);
	} else if (s[0] == '~') {
		conf_err(
		        p, *at,
		        "\"%s\" is a file of this machine: write it absolute, or relative to the jobs file's directory (\"~\" is not expanded)",
		        name);
	} else {
		free(*dst);
		*dst = s[0] == '/' ? xstrdup(s) : xasprintf("%s/%s", p->c->dir, s);
	}
	free(s);
}

/* "dir": a directory of the hosts, absolute or below the login user's home. */
static void
dir_value(struct pctx *p, struct conf_ssh *ssh, struct fy_node *key, struct fy_node *v)
{
	struct diag_pos at = conf_pos_or(p, v, conf_pos(p, key));
	size_t len, skip;
	char *s, *q;

	if ((s = conf_get_str(p, "dir", v, conf_pos(p, key))) == NULL)
		return;
	len = strlen(s);
	while (len > 2 && s[len - 1] == '/') /* "~/.eph/" is "~/.eph" */
		s[--len] = '\0';
	skip = s[0] == '/' ? 1 : s[0] == '~' && s[1] == '/' ? 2 : 0;
	q = conf_quote_redacted(s);
	if (len > SSH_DIR_MAX)
		conf_err(p, at, "\"dir\" is longer than %d bytes", SSH_DIR_MAX);
	else if (strpbrk(s, " \t\n\r\v\f") != NULL || has_control(s))
		conf_err(p, at, "\"dir\" may not hold whitespace or control characters: %s", q);
	else if (skip == 0)
		conf_err(
		        p, at,
		        "\"dir\" must be absolute (/srv/ephemeron) or start with \"~/\" (the login user's home), not %s",
		        q);
	else if (s[skip] == '\0')
		conf_err(p, at, "\"dir\" must be a directory of its own, not %s", q);
	else if (!conf_path_plain(s + skip))
		conf_err(p, at, "\"dir\" must be a plain path, without \"//\", \".\" or \"..\": %s",
		         q);
	else {
		free(ssh->dir);
		ssh->dir = s;
		s = NULL;
	}
	free(q);
	free(s);
}

static void
ssh_special(struct pctx *p, const struct conf_key *ck, struct fy_node *key, struct fy_node *v,
            void *arg)
{
	struct ssh_build *b = arg;

	switch (ck - ssh_keys) {
	case SK_HOSTS:
		hosts_value(p, b, key, v);
		return;
	case SK_IDENTITY:
		path_value(p, "identity_file", key, v, &b->s->identity_file, &b->identity_at);
		return;
	case SK_KNOWN_HOSTS:
		path_value(p, "known_hosts", key, v, &b->s->known_hosts, &b->known_at);
		return;
	case SK_DIR:
		dir_value(p, b->s, key, v);
		return;
	default: /* SK_TYPE: read by conf_executors.c, never passed here */
		return;
	}
}

static void
ssh_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
         void *arg)
{
	struct ssh_build *b = arg;

	if (!(klen == 4 && memcmp(k, "type", 4) == 0)) /* the executor's type, already read */
		conf_generic_pair(p, key, k, klen, v, &b->g);
}

/* The files of B's executor, and each host's entry in known_hosts. */
static void
ssh_files(struct pctx *p, const struct ssh_build *b)
{
	const struct conf_ssh *s = b->s;
	struct remote_ssh rs;
	struct diag tmp;
	struct buf known;
	bool known_ok = true;

	memset(&rs, 0, sizeof(rs));
	rs.known_hosts = s->known_hosts;
	rs.identity_file = s->identity_file;
	diag_init(&tmp);
	/* both files' problems come at one place: each goes to its own key's value, which its
	 * message starts with ("known_hosts PATH ...", "identity_file PATH ...") */
	if (remote_check_files(&rs, b->known_at, &tmp) < 0) {
		for (size_t i = 0; i < tmp.n; i++) {
			bool identity = strncmp(tmp.items[i].msg, "identity_file ", 14) == 0;

			conf_err(p, identity ? b->identity_at : b->known_at, "%s",
			         tmp.items[i].msg);
			known_ok = known_ok && identity;
		}
	}
	diag_free(&tmp);
	if (!known_ok)
		return; /* every host would be reported for it */
	/* read once for all the hosts (1000 of them would read it 1000 times); a host without
	 * an entry is then passed to remote_check_host, whose message says how to add one */
	buf_init(&known, REMOTE_MAX_KNOWN);
	if (fsio_read_file(s->known_hosts, &known) < 0)
		buf_free(&known); /* remote_check_host says why, at each host */
	for (size_t i = 0; i < s->nhosts && !p->halted; i++) {
		struct diag_pos at = { p->file, s->hosts[i].line, s->hosts[i].col };

		if (known.data != NULL &&
		    remote_known_match(known.data, known.len, &s->hosts[i].host))
			continue;
		diag_init(&tmp);
		if (remote_check_host(&rs, &s->hosts[i].host, at, &tmp) < 0 &&
		    forward(p, &tmp, at) == 0) /* unreadable since remote_check_files looked */
			conf_err(p, b->known_at, "known_hosts %s cannot be read", s->known_hosts);
		diag_free(&tmp);
	}
	buf_free(&known);
}

void
conf_ssh_read(struct pctx *p, struct conf_executor *e, struct fy_node *m, struct diag_pos keyat)
{
	struct conf_ssh *s = xcalloc(1, sizeof(*s));
	struct ssh_build b;
	char *q;

	s->dir = xstrdup(SSH_DIR_DEFAULT);
	s->default_memory = UINT64_C(1) << 30;
	s->lost_after = 600;
	s->max_wait = 3600;
	s->connect_timeout = 10;
	e->keys = s;
	memset(&b, 0, sizeof(b));
	b.s = s;
	b.g = (struct conf_generic_arg){ &conf_sec_ssh, s, ssh_special, &b };
	conf_map_walk(p, m, ssh_pair, &b);
	if (p->halted)
		return; /* its keys were not all read */
	q = conf_quote(e->name, strlen(e->name));
	if (!b.hosts_written)
		conf_err(
		        p, keyat,
		        "executor %s needs \"hosts\": a list of {host: [user@]addr[:port], memory: SIZE}",
		        q);
	if (b.known_at.line == 0)
		conf_err(
		        p, keyat,
		        "executor %s needs \"known_hosts\": the hosts' keys are pinned, never learned",
		        q);
	else if (s->known_hosts != NULL)
		ssh_files(p, &b);
	free(q);
}

void
conf_ssh_free(void *keys)
{
	struct conf_ssh *s = keys;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nhosts; i++) {
		free(s->hosts[i].text);
		remote_host_clear(&s->hosts[i].host);
	}
	free(s->hosts);
	free(s->identity_file);
	free(s->known_hosts);
	free(s->dir);
	free(s);
}

void
conf_ssh_job_check(struct pctx *p, const struct conf_executor *e, bool keys_ok,
                   const struct jobb *jb, const char *q, struct diag_pos at)
{
	const struct conf_ssh *s = e->keys;
	struct diag_pos eat = jb->executor_at.line > 0 ? jb->executor_at : at;
	uint64_t need, most = 0;
	char *eq = conf_quote(e->name, strlen(e->name));
	char a[32], b[32];

	if (p->c->source.repo == NULL && !conf_from_repo())
		conf_err(
		        p, eat,
		        "job %s runs on executor %s (ssh): its code travels as a commit, so the file needs a \"source:\" section (or run the daemon with --from-repo)",
		        q, eq);
	if (keys_ok && s->nhosts > 0) { /* else the hosts may be partial: no verdict */
		need = jb->j.memory > 0 ? jb->j.memory : s->default_memory;
		for (size_t i = 0; i < s->nhosts; i++)
			if (s->hosts[i].memory > most)
				most = s->hosts[i].memory;
		units_format_size(need, a, sizeof(a));
		units_format_size(most, b, sizeof(b));
		if (need > most && jb->j.memory > 0)
			conf_err(p, jb->memory_at.line > 0 ? jb->memory_at : at,
			         "job %s needs %s but the largest host of executor %s has %s", q, a,
			         eq, b);
		else if (need > most)
			conf_err(
			        p, eat,
			        "job %s needs %s (the default_memory of executor %s, as it has no \"memory\") but its largest host has %s",
			        q, a, eq, b);
	}
	free(eq);
}
