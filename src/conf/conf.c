/* src/conf/conf.c: reading the jobs file: its text checked (UTF-8, one document), parsed by
 * libfyaml (duplicate keys are found by conf_dupkeys.c), then walked against the key tables
 * of conf_keys.c (conf_section.c, conf_job.c), every problem reported at its node as
 * FILE:LINE:COL, and the walk going on after each. */
#include "conf/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfyaml.h>

#include "conf/conf_compact.h"
#include "conf/conf_int.h"
#include "sched/cronexpr.h"
#include "sched/tz.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

/* ---- the YAML text ---- */

/* The offset of the first byte that is not valid UTF-8 (or is NUL) in TEXT, or LEN. */
static size_t
utf8_check(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c == 0)
			return i;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return i;
		}
		if (len - i <= n)
			return i;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return i;
		i += n + 1;
	}
	return len;
}

/* Line and column (1-based, in characters) of byte OFF of TEXT. */
static struct diag_pos
text_pos(const char *file, const char *text, size_t off)
{
	struct diag_pos at = { file, 1, 1 };

	for (size_t i = 0; i < off; i++) {
		if (text[i] == '\n') {
			at.line++;
			at.col = 1;
		} else if (((unsigned char)text[i] & 0xC0) != 0x80) {
			at.col++;
		}
	}
	return at;
}

static void
fy_silent(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
	(void)diag;
	(void)user;
	(void)buf;
	(void)len;
}

/* Moves libfyaml's collected errors into D, in our format. Returns how many. */
static size_t
fy_errors_to_diag(struct pctx *p, struct fy_diag *fd)
{
	struct fy_diag_error *e;
	void *it = NULL;
	size_t n = 0;

	while ((e = fy_diag_errors_iterate(fd, &it)) != NULL) {
		struct diag_pos at = { p->file, e->line > 0 ? e->line : 0,
			               e->column > 0 ? e->column : 0 };

		if (e->type < FYET_ERROR)
			continue;
		conf_err(p, at, "%s", e->msg);
		n++;
	}
	return n;
}

/* Reports the first byte of TEXT that is not UTF-8, or NUL; false then. */
static bool
text_ok(struct pctx *p, const char *text, size_t len)
{
	size_t bad = utf8_check((const unsigned char *)text, len);

	if (bad == len)
		return true;
	if (text[bad] == '\0')
		conf_err(p, text_pos(p->file, text, bad),
		         "contains a NUL byte: a jobs file is text");
	else
		conf_err(p, text_pos(p->file, text, bad),
		         "not valid UTF-8 (byte 0x%02x): a jobs file must be UTF-8",
		         (unsigned char)text[bad]);
	return false;
}

/* A new parser, whose errors are collected in *FD, silently. */
static struct fy_parser *
parser_new(struct fy_diag **fd)
{
	struct fy_diag_cfg dc;
	struct fy_parse_cfg pc;
	struct fy_parser *fyp;

	fy_diag_cfg_default(&dc);
	dc.fp = NULL;
	dc.output_fn = fy_silent;
	dc.colorize = false;
	*fd = fy_diag_create(&dc);
	if (*fd == NULL)
		abort(); /* only fails on allocation */
	fy_diag_set_collect_errors(*fd, true);
	memset(&pc, 0, sizeof(pc));
	pc.flags = FYPCF_QUIET | FYPCF_JSON_NONE | FYPCF_ALLOW_DUPLICATE_KEYS; /* conf_dup_keys */
	pc.diag = *fd;
	fyp = fy_parser_create(&pc);
	if (fyp == NULL)
		abort();
	return fyp;
}

/* Reports DOC2, a second document, where it starts. */
static void
second_document(struct pctx *p, struct fy_document *doc2)
{
	struct fy_node *r2 = fy_document_root(doc2);
	const struct fy_mark *m2 =
	        fy_document_state_start_mark(fy_document_get_document_state(doc2));
	struct diag_pos at2 = { p->file, 0, 0 };

	/* an empty one (a trailing "---") has no node: its start stands for it */
	if (m2 != NULL)
		at2 = (struct diag_pos){ p->file, m2->line + 1, m2->column + 1 };
	conf_err(p, conf_pos_or(p, r2, at2), "a second YAML document: the jobs file holds one");
}

/* The one document of the text FYP parses, or NULL (reported); the caller destroys it. */
static struct fy_document *
load_document(struct pctx *p, struct fy_parser *fyp, struct fy_diag *fd)
{
	struct fy_document *doc = fy_parse_load_document(fyp), *doc2;

	if (fy_errors_to_diag(p, fd) > 0 || doc == NULL) {
		if (conf_nerrors(p) == 0)
			conf_err(p, (struct diag_pos){ p->file, 0, 0 },
			         "no jobs: the file is empty");
		goto fail;
	}
	doc2 = fy_parse_load_document(fyp);
	if (doc2 != NULL) {
		second_document(p, doc2);
		fy_parse_document_destroy(fyp, doc2);
		goto fail;
	}
	if (fy_errors_to_diag(p, fd) > 0)
		goto fail;
	return doc;
fail:
	if (doc != NULL)
		fy_parse_document_destroy(fyp, doc);
	return NULL;
}

/* Checks the document whose root is ROOT and walks it into P->c. */
static void
conf_document(struct pctx *p, struct fy_node *root)
{
	conf_dup_keys(p, root);
	if (conf_nerrors(p) != 0)
		return; /* as when libfyaml rejected them: the rest would mislead */
	if (root == NULL) {
		conf_err(p, (struct diag_pos){ p->file, 0, 0 }, "no jobs: the file is empty");
		return;
	}
	if ((root = conf_deref(p, root)) == NULL)
		return;
	if (!fy_node_is_mapping(root)) {
		struct diag_pos at = conf_pos(p, root);

		if (at.line == 0)
			at = (struct diag_pos){ p->file, 1, 1 };
		conf_err(p, at,
		         "the top level must be a mapping (source, defaults, jobs, ...), not %s",
		         conf_node_kind(root));
		return;
	}
	conf_walk(p, root);
	if (conf_nerrors(p) == 0)
		conf_local_zone(p);
}

static int
conf_parse(struct pctx *p, const char *text, size_t len)
{
	struct fy_diag *fd;
	struct fy_parser *fyp;
	struct fy_document *doc;

	if (!text_ok(p, text, len))
		return -EINVAL;
	fyp = parser_new(&fd);
	if (fy_parser_set_string(fyp, text, len) != 0) {
		conf_err(p, (struct diag_pos){ p->file, 0, 0 }, "cannot parse");
	} else if ((doc = load_document(p, fyp, fd)) != NULL) {
		conf_document(p, fy_document_root(doc));
		fy_parse_document_destroy(fyp, doc);
	}
	fy_parser_destroy(fyp);
	fy_diag_destroy(fd);
	return conf_nerrors(p) == 0 ? 0 : -EINVAL;
}

/* ---- public ---- */

int
conf_load_mem(const char *name, const char *dir, const char *text, size_t len, struct conf **out,
              struct diag *d)
{
	struct pctx p;
	struct conf *c;
	int rc;

	*out = NULL;
	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(name);
	if (dir != NULL) {
		c->dir = xstrdup(dir);
	} else {
		c->dir = getcwd(NULL, 0);
		if (c->dir == NULL)
			c->dir = xstrdup("/");
	}
	conf_init_defaults(c);
	memset(&p, 0, sizeof(p));
	p.file = name;
	p.d = d;
	p.c = c;
	p.expand_max = CONF_EXPAND_MAX + CONF_VISIT_COST / 2 * len;
	p.expand_left = p.expand_max;
	p.canon_left = CONF_KEYS_CANON_MAX;
	if (len > BUF_MAX_CONF) {
		diag_error(d, (struct diag_pos){ name, 0, 0 },
		           "too large: a jobs file may have at most %u MiB", BUF_MAX_CONF >> 20);
		rc = -EINVAL;
	} else {
		rc = conf_parse(&p, text, len);
	}
	for (size_t i = 0; i < c->nzones; i++)
		free(p.zone_names[i]);
	free(p.zone_names);
	free(p.py_requirements);
	free(p.py_interpreter);
	for (size_t i = 0; i < p.nseen; i++)
		free(p.seen[i]);
	if (rc < 0) {
		conf_free(c);
		return rc;
	}
	conf_compact(c); /* once the document is gone: a lower peak */
	*out = c;
	return 0;
}

/* The absolute directory of PATH. Caller frees. */
static char *
abs_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir, *real, *cwd, *r;

	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(slash - path));
	real = realpath(dir, NULL);
	if (real != NULL) {
		free(dir);
		return real;
	}
	if (dir[0] == '/')
		return dir;
	cwd = getcwd(NULL, 0);
	r = xasprintf("%s/%s", cwd != NULL ? cwd : "", dir);
	free(cwd);
	free(dir);
	return r;
}

int
conf_load(const char *path, struct conf **out, struct diag *d)
{
	struct diag_pos at = { path, 0, 0 };
	struct stat st;
	struct buf b;
	char *dir, chunk[65536];
	int fd, rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		diag_error(d, at, "cannot read: %s", strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		diag_error(d, at, "cannot read: %s", strerror(-rc));
		close(fd);
		return rc;
	}
	if (S_ISDIR(st.st_mode)) {
		diag_error(d, at, "cannot read: %s", strerror(EISDIR));
		close(fd);
		return -EISDIR;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > BUF_MAX_CONF) {
		char got[32];

		units_format_size((uint64_t)st.st_size, got, sizeof(got));
		diag_error(d, at, "too large (%s): a jobs file may have at most %u MiB", got,
		           BUF_MAX_CONF >> 20);
		close(fd);
		return -EFBIG;
	}
	buf_init(&b, BUF_MAX_CONF);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			diag_error(d, at, "cannot read: %s", strerror(-rc));
			break;
		}
		if (n == 0)
			break;
		if (buf_append(&b, chunk, (size_t)n) < 0) {
			diag_error(d, at, "too large: a jobs file may have at most %u MiB",
			           BUF_MAX_CONF >> 20);
			rc = -EFBIG;
			break;
		}
	}
	close(fd);
	if (rc == 0) {
		dir = abs_dir(path);
		rc = conf_load_mem(path, dir, b.len > 0 ? b.data : "", b.len, out, d);
		free(dir);
	}
	buf_free(&b);
	return rc;
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->dir);
	free(c->source.repo);
	free(c->source.branch);
	free(c->source.commit);
	free(c->mail.smtp);
	free(c->mail.from);
	free(c->mail.username);
	free(c->mail.password_file);
	free(c->mail.password_env);
	free(c->mail.ca_file);
	conf_strv_free(&c->mail.admin);
	conf_executors_free(c);
	conf_secrets_free(c);
	conf_results_store_free(c);
	if (c->pool == NULL) { /* not compacted: each job owns its own */
		for (size_t i = 0; i < c->njobs; i++)
			conf_job_clear(&c->jobs[i]);
	}
	for (size_t i = 0; i < c->ncrons; i++)
		cronexpr_free(c->crons[i]);
	free(c->crons);
	conf_pool_free(c->pool);
	free(c->jobs);
	for (size_t i = 0; i < c->nzones; i++)
		tz_free(c->zones[i]);
	free(c->zones);
	free(c);
}

static int
job_key_cmp(const void *key, const void *elem)
{
	const struct conf_job *j = elem;

	return strcmp(key, j->name);
}

const struct conf_job *
conf_job_find(const struct conf *c, const char *name)
{
	if (c == NULL || c->njobs == 0)
		return NULL;
	return bsearch(name, c->jobs, c->njobs, sizeof(*c->jobs), job_key_cmp);
}
