/* src/exec/exec_secrets.c: a run's secrets, read right before its agent starts. */
#include "exec/exec_secrets.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rundir/rundir.h"
#include "util/buf.h"
#include "util/fsio.h"
#include "util/xalloc.h"

_Static_assert(CONF_SECRETS_MAX == RUNDIR_SECRETS_MAX, "the agent reads what we may send");

void
exec_secrets_of_job(struct exec_secrets *out, const struct conf *c, const struct conf_job *j)
{
	out->v = NULL;
	out->n = 0;
	out->hide = NULL;
	out->nhide = 0;
	for (size_t i = 0; i < c->nsecrets; i++) {
		if (c->secrets[i].kind != CONF_SECRET_ENV)
			continue;
		out->hide = xreallocarray(out->hide, out->nhide + 1, sizeof(*out->hide));
		out->hide[out->nhide++] = xstrdup(c->secrets[i].from);
	}
	/* and the variable mail's password is read from, those of results_store's keys and those
	 * of the cloud executors' tokens: no run is given them */
	if (c->mail.password_env != NULL) {
		out->hide = xreallocarray(out->hide, out->nhide + 1, sizeof(*out->hide));
		out->hide[out->nhide++] = xstrdup(c->mail.password_env);
	}
	for (size_t i = 0; i < c->nexecutors; i++) {
		const struct conf_do *d = c->executors[i].keys;

		if (c->executors[i].type == CONF_EXEC_DIGITALOCEAN && d != NULL &&
		    d->token_env != NULL) {
			out->hide = xreallocarray(out->hide, out->nhide + 1, sizeof(*out->hide));
			out->hide[out->nhide++] = xstrdup(d->token_env);
		}
	}
	for (size_t i = 0; c->results_store.url != NULL && i < 2; i++) {
		const struct conf_secret *k =
		        i == 0 ? &c->results_store.access_key : &c->results_store.secret_key;

		if (k->kind == CONF_SECRET_ENV) {
			out->hide = xreallocarray(out->hide, out->nhide + 1, sizeof(*out->hide));
			out->hide[out->nhide++] = xstrdup(k->from);
		}
	}
	if (j->secrets.n == 0)
		return;
	out->v = xcalloc(j->secrets.n, sizeof(*out->v));
	for (size_t i = 0; i < j->secrets.n; i++) {
		const char *kv = j->secrets.v[i], *eq = strchr(kv, '=');
		const struct conf_secret *cs = eq != NULL ? conf_secret_find(c, eq + 1) : NULL;
		struct exec_secret *s = &out->v[out->n];

		if (cs == NULL)
			continue; /* validation saw to it that there is one */
		s->var = xstrndup(kv, (size_t)(eq - kv));
		s->name = xstrdup(cs->name);
		s->kind = cs->kind;
		s->from = xstrdup(cs->from);
		out->n++;
	}
}

void
exec_secrets_clear(struct exec_secrets *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].var);
		free(s->v[i].name);
		free(s->v[i].from);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
	for (size_t i = 0; i < s->nhide; i++)
		free(s->hide[i]);
	free(s->hide);
	s->hide = NULL;
	s->nhide = 0;
}

void
exec_secrets_move(struct exec_secrets *to, struct exec_secrets *from)
{
	*to = *from;
	from->v = NULL;
	from->n = 0;
	from->hide = NULL;
	from->nhide = 0;
}

char **
exec_secrets_environ(const struct exec_secrets *s, char *const *environ_)
{
	size_t n = 0, k = 0;
	char **env;

	if (s->nhide == 0)
		return NULL;
	while (environ_[n] != NULL)
		n++;
	env = xcalloc(n + 1, sizeof(*env));
	for (size_t i = 0; i < n; i++) {
		size_t l = strcspn(environ_[i], "=");
		bool hidden = false;

		for (size_t h = 0; h < s->nhide && !hidden; h++)
			hidden = strlen(s->hide[h]) == l && memcmp(s->hide[h], environ_[i], l) == 0;
		if (!hidden)
			env[k++] = environ_[i];
	}
	env[k] = NULL;
	return env;
}

void
exec_secrets_wipe(char *blob, size_t len)
{
	if (blob == NULL)
		return;
	explicit_bzero(blob, len);
	free(blob);
}

/* The value of S into B (empty, limit CONF_SECRETS_MAX): 0, or -errno with *WHY the text
 * after "secrets: ". */
static int
secret_value(const struct exec_secret *s, struct buf *b, char **why)
{
	mode_t mode = 0;
	int rc;

	if (s->kind == CONF_SECRET_ENV) {
		const char *v = getenv(s->from);

		if (v == NULL) {
			*why = xasprintf("%s (for %s): the variable %s is not set", s->name, s->var,
			                 s->from);
			return -ENOENT;
		}
		if ((rc = buf_append(b, v, strlen(v))) < 0)
			*why = xasprintf("%s (for %s): larger than a run's secrets may be (%u KiB)",
			                 s->name, s->var, CONF_SECRETS_MAX >> 10);
		return rc;
	}
	rc = fsio_read_private(s->from, b, &mode);
	if (rc == -EPERM && (mode & 077) != 0)
		*why = xasprintf("%s (for %s): %s can be read by group or others (mode %04o)",
		                 s->name, s->var, s->from, (unsigned)mode);
	else if (rc == -E2BIG)
		*why = xasprintf("%s (for %s): %s is larger than a run's secrets may be (%u KiB)",
		                 s->name, s->var, s->from, CONF_SECRETS_MAX >> 10);
	else if (rc < 0)
		*why = xasprintf("%s (for %s): %s: %s", s->name, s->var, s->from, strerror(-rc));
	if (rc < 0)
		return rc;
	if (b->len > 0 && b->data[b->len - 1] == '\n')
		b->data[--b->len] = '\0'; /* the whole file, less one trailing newline */
	if (memchr(buf_cstr(b), '\0', b->len) != NULL) {
		*why = xasprintf("%s (for %s): %s holds a NUL byte", s->name, s->var, s->from);
		return -EINVAL;
	}
	return 0;
}

int
exec_secrets_read(const struct exec_secrets *s, char **blob, size_t *len, char **why)
{
	char *out, *msg = NULL;
	size_t n = 0;
	int rc = 0;

	*blob = NULL;
	*len = 0;
	*why = NULL;
	if (s->n == 0)
		return 0;
	/* all of it allocated at once: no growth leaves a copy of a value behind */
	out = xmalloc(CONF_SECRETS_MAX);
	for (size_t i = 0; i < s->n && rc == 0; i++) {
		const struct exec_secret *e = &s->v[i];
		struct buf b;
		size_t vl = strlen(e->var);

		buf_init(&b, CONF_SECRETS_MAX);
		rc = secret_value(e, &b, &msg);
		if (rc == 0 && b.len < CONF_SECRET_MIN) {
			msg = xasprintf(
			        "%s (for %s): shorter than %d bytes: it could not be masked in "
			        "the output",
			        e->name, e->var, CONF_SECRET_MIN);
			rc = -EINVAL;
		}
		if (rc == 0 && (vl + 1 + b.len + 1 > CONF_SECRETS_MAX - n)) {
			msg = xasprintf("more than %u KiB in all", CONF_SECRETS_MAX >> 10);
			rc = -E2BIG;
		}
		if (rc == 0) {
			memcpy(out + n, e->var, vl);
			out[n + vl] = '=';
			memcpy(out + n + vl + 1, b.data, b.len);
			out[n + vl + 1 + b.len] = '\0';
			n += vl + 1 + b.len + 1;
		}
		if (b.data != NULL)
			explicit_bzero(b.data, b.cap);
		buf_free(&b);
	}
	if (rc < 0) {
		exec_secrets_wipe(out, CONF_SECRETS_MAX);
		*why = rundir_failure_reason(RUNDIR_FAILURE_SECRETS, msg);
		free(msg);
		return rc;
	}
	*blob = out;
	*len = n;
	return 0;
}
