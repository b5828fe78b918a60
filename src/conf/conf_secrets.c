/* src/conf/conf_secrets.c: the top-level "secrets" (each a file or a variable, named once) and
 * a job's "secrets" (its command's variables set from them by name). The values are never
 * read here: the process that starts a run's agent reads them right before (exec_secrets.h);
 * validation only checks a file where it can see it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfyaml.h>

#include "conf/conf_int.h"
#include "conf/conf_keys.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define CONF_MAX_SECRETS 1000

/* A variable name as env's: letters, digits and _, not starting with a digit. */
static bool
secret_var_ok(const char *k, size_t n)
{
	if (n == 0 || (k[0] >= '0' && k[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
		      (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return false;
	return true;
}

/* The variables every run is given by ephemeron itself (conf_job.c's env_reserved). */
static bool
secret_var_reserved(const char *k, size_t n)
{
	static const char *const reserved[] = { "EPH_RUN_ID",       "EPH_JOB",    "EPH_ATTEMPT",
		                                "EPH_SCHEDULED_AT", "EPH_COMMIT", "EPH_RESULTS" };

	for (size_t i = 0; i < EPH_ARRAY_LEN(reserved); i++)
		if (strlen(reserved[i]) == n && memcmp(reserved[i], k, n) == 0)
			return true;
	return false;
}

const struct conf_secret *
conf_secret_find(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nsecrets; i++)
		if (strcmp(c->secrets[i].name, name) == 0)
			return &c->secrets[i];
	return NULL;
}

void
conf_secrets_free(struct conf *c)
{
	for (size_t i = 0; i < c->nsecrets; i++) {
		free(c->secrets[i].name);
		free(c->secrets[i].from);
	}
	free(c->secrets);
	c->secrets = NULL;
	c->nsecrets = 0;
}

/* ---- the top-level mapping ---- */

/* The keys of one secret being read. */
struct secret_arg {
	char *file, *env;
	struct diag_pos file_at, env_at;
};

static void
secret_key_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
                void *arg)
{
	struct secret_arg *sa = arg;
	const struct conf_key *ck = conf_key_find(&conf_sec_secret, k, klen);
	struct diag_pos at = conf_pos(p, key);
	char *s;

	if (ck == NULL) {
		conf_unknown_key(p, &conf_sec_secret, key, k, klen, NULL);
		return;
	}
	if ((s = conf_get_str(p, ck->name, conf_deref(p, v), at)) == NULL)
		return;
	if (ck->id == K_SECRET_FILE) {
		free(sa->file);
		sa->file = s;
		sa->file_at = conf_pos_or(p, v, at);
	} else {
		free(sa->env);
		sa->env = s;
		sa->env_at = conf_pos_or(p, v, at);
	}
}

/* Checks the file of secret Q where validation can see it: it exists, is a regular file that
 * group and others cannot read, and is not too large to be given to a run. */
static void
secret_file_check(struct pctx *p, const char *q, const char *path, struct diag_pos at)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 || fstat(fd, &st) < 0) {
		conf_err(p, at, "%s: cannot read %s: %s", q, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	if (!S_ISREG(st.st_mode))
		conf_err(p, at, "%s: %s is not a regular file", q, path);
	else if ((st.st_mode & 077) != 0)
		conf_err(
		        p, at,
		        "%s: %s can be read by group or others (mode %04o); refusing to use it: chmod 600 %s",
		        q, path, (unsigned)(st.st_mode & 07777), path);
	else if ((uint64_t)st.st_size > CONF_SECRETS_MAX)
		conf_err(p, at, "%s: %s is larger than a run's secrets may be (%u KiB)", q, path,
		         CONF_SECRETS_MAX >> 10);
}

bool
conf_secret_source(struct pctx *p, const char *q, struct fy_node *v, struct diag_pos at,
                   struct conf_secret *out)
{
	struct secret_arg sa = { 0 };
	bool ok = false;

	if (v != NULL && (v = conf_deref(p, v)) == NULL)
		goto out;
	if (v == NULL || !fy_node_is_mapping(v)) {
		conf_err(p, conf_pos_or(p, v, at),
		         "%s must be a mapping, { file: PATH } or { env: VAR }, not %s", q,
		         conf_node_kind(v));
		goto out;
	}
	conf_map_walk(p, v, secret_key_pair, &sa);
	if (sa.file != NULL && sa.env != NULL) {
		conf_err(p, at, "%s has both \"file\" and \"env\": keep one", q);
		goto out;
	}
	if (sa.file == NULL && sa.env == NULL) {
		conf_err(p, at, "%s needs \"file\" (a path) or \"env\" (a variable's name)", q);
		goto out;
	}
	if (sa.env != NULL && !secret_var_ok(sa.env, strlen(sa.env))) {
		char *qv = conf_quote(sa.env, strlen(sa.env));

		conf_err(
		        p, sa.env_at,
		        "%s: %s is not a valid environment variable name (letters, digits and _, not starting with a digit)",
		        q, qv);
		free(qv);
		goto out;
	}
	out->line = at.line;
	out->col = at.col;
	if (sa.env != NULL) {
		out->kind = CONF_SECRET_ENV;
		out->from = sa.env;
		sa.env = NULL;
	} else {
		out->kind = CONF_SECRET_FILE;
		out->from = sa.file[0] == '/' ? xstrdup(sa.file)
		                              : xasprintf("%s/%s", p->c->dir, sa.file);
		secret_file_check(p, q, out->from, sa.file_at);
	}
	ok = true;
out:
	free(sa.file);
	free(sa.env);
	return ok;
}

static void
secret_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
            void *arg)
{
	struct conf *c = p->c;
	struct diag_pos at = conf_pos(p, key);
	struct conf_secret s = { 0 };
	char *q = conf_quote(k, klen), *what;

	(void)arg;
	if (!conf_name_ok(k, klen)) {
		conf_err(
		        p, at,
		        "bad secret name %s: use at most %d lowercase letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit",
		        q, CONF_JOB_NAME_MAX);
		goto out;
	}
	if (c->nsecrets == CONF_MAX_SECRETS) {
		conf_err(p, at, "more than %d secrets", CONF_MAX_SECRETS);
		goto out;
	}
	what = xasprintf("secret %s", q);
	if (conf_secret_source(p, what, v, at, &s)) {
		c->secrets = xreallocarray(c->secrets, c->nsecrets + 1, sizeof(*c->secrets));
		s.name = xstrndup(k, klen);
		c->secrets[c->nsecrets++] = s;
	}
	free(what);
out:
	free(q);
}

void
conf_secrets_read(struct pctx *p, struct fy_node *key, struct fy_node *v)
{
	struct fy_node *m = conf_want_map(p, "secrets", key, v);

	if (m != NULL)
		conf_map_walk(p, m, secret_pair, NULL);
}

/* ---- a job's mapping ---- */

/* The secret name closest to NAME (LEN bytes) within two edits, or NULL. */
static const char *
secret_suggest(const struct conf *c, const char *name, size_t len)
{
	const char *best = NULL;
	size_t bestd = 3;

	for (size_t i = 0; i < c->nsecrets; i++) {
		const char *k = c->secrets[i].name;
		size_t d = conf_edit_distance(name, len, k, strlen(k), 2);

		if (d < bestd) {
			bestd = d;
			best = k;
		}
	}
	return best;
}

static void
job_secret_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
                void *arg)
{
	struct conf_job *j = arg;
	struct diag_pos at = conf_pos(p, key);
	char *q = conf_quote(k, klen), *name = NULL, *kv;
	size_t i;

	if (!secret_var_ok(k, klen)) {
		conf_err(
		        p, at,
		        "%s is not a valid environment variable name (letters, digits and _, not starting with a digit)",
		        q);
		goto out;
	}
	if (secret_var_reserved(k, klen)) {
		conf_err(
		        p, at,
		        "environment variable %s is reserved: ephemeron sets EPH_RUN_ID, EPH_JOB, EPH_ATTEMPT, EPH_SCHEDULED_AT, EPH_COMMIT and EPH_RESULTS for each run",
		        q);
		goto out;
	}
	if ((name = conf_get_str(p, "secrets", conf_deref(p, v), at)) == NULL)
		goto out;
	if (conf_secret_find(p->c, name) == NULL) {
		const char *sug = secret_suggest(p->c, name, strlen(name));
		char *qn = conf_quote(name, strlen(name));

		if (sug != NULL)
			conf_err(p, conf_pos_or(p, v, at),
			         "unknown secret %s (did you mean \"%s\"?)", qn, sug);
		else if (p->c->nsecrets == 0)
			conf_err(p, conf_pos_or(p, v, at),
			         "unknown secret %s: the top-level \"secrets\" names none", qn);
		else
			conf_err(
			        p, conf_pos_or(p, v, at),
			        "unknown secret %s: the top-level \"secrets\" has none of that name",
			        qn);
		free(qn);
		goto out;
	}
	kv = xasprintf("%.*s=%s", (int)klen, k, name);
	if (!conf_charge(p, strlen(kv), at)) {
		free(kv);
		goto out;
	}
	/* a job's own replaces the defaults' of the same variable */
	for (i = 0; i < j->secrets.n; i++)
		if (strncmp(j->secrets.v[i], kv, klen + 1) == 0)
			break;
	if (i < j->secrets.n) {
		free(j->secrets.v[i]);
		j->secrets.v[i] = kv;
	} else if (j->secrets.n < CONF_MAX_JOB_SECRETS) {
		conf_strv_push(&j->secrets, kv);
	} else {
		conf_err(p, at, "more than %d secrets for one job", CONF_MAX_JOB_SECRETS);
		free(kv);
	}
out:
	free(name);
	free(q);
}

void
conf_job_secrets(struct pctx *p, struct jobb *jb, struct fy_node *key, struct fy_node *v)
{
	struct fy_node *m = conf_want_map(p, "secrets", key, v);

	if (m != NULL)
		conf_map_walk(p, m, job_secret_pair, &jb->j);
}

void
conf_secrets_job_check(struct pctx *p, const struct jobb *jb, const char *q, struct diag_pos at)
{
	const struct conf_job *j = &jb->j;
	struct diag_pos sat = jb->secrets_at.line > 0 ? jb->secrets_at : at;

	if (j->secrets.n == 0)
		return;
	for (size_t i = 0; i < j->secrets.n; i++) {
		size_t n = strcspn(j->secrets.v[i], "=");

		for (size_t e = 0; e < j->env.n; e++)
			if (strncmp(j->env.v[e], j->secrets.v[i], n + 1) == 0)
				conf_err(
				        p, sat,
				        "job %s sets %.*s both in \"env\" and in \"secrets\": keep one",
				        q, (int)n, j->secrets.v[i]);
	}
	if (j->executor_ix < p->c->nexecutors &&
	    p->c->executors[j->executor_ix].type == CONF_EXEC_SLURM)
		conf_err(
		        p, sat,
		        "job %s has secrets, which the slurm executor cannot carry (a batch job has no private channel to its node)",
		        q);
}
