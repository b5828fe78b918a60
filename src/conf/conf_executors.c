/* src/conf/conf_executors.c: the executors mapping, a name to {type, the type's keys}, and
 * the job's "executor:" that names one of them.
 *
 * Each type reads its own keys with its own table: local's is conf_keys.c's conf_sec_local.
 * A later type (ssh, digitalocean, slurm) adds its settings struct to conf.h, its keys table
 * and checks in a file of its own (conf_exec_ssh.c, ...), and fills its row of exec_types
 * below; nothing else changes. Until then its row has no keys, and validation refuses the
 * type, so no half-built executor can be configured. */
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "conf/conf_int.h"
#include "conf/conf_keys.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define EXEC_NAMES_LISTED 8 /* executors a message lists */

struct exec_type {
	const char *name;               /* as "type:" writes it */
	const struct conf_section *sec; /* its keys; NULL: not available yet */
};

static const struct exec_type exec_types[] = {
	[CONF_EXEC_LOCAL] = { "local", &conf_sec_local },
	[CONF_EXEC_SSH] = { "ssh", NULL },
	[CONF_EXEC_DIGITALOCEAN] = { "digitalocean", NULL },
	[CONF_EXEC_SLURM] = { "slurm", NULL },
};

/* The types as a section, for the "did you mean" of an unknown one. */
static const struct conf_key type_keys[] = {
	{ "local", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, NULL, NULL },
	{ "ssh", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, NULL, NULL },
	{ "digitalocean", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, NULL, NULL },
	{ "slurm", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, NULL, NULL },
};

static const struct conf_section type_sec = { "executor types", type_keys,
	                                      EPH_ARRAY_LEN(type_keys) };

const char *
conf_exec_type_name(enum conf_exec_type t)
{
	return (size_t)t < EPH_ARRAY_LEN(exec_types) ? exec_types[t].name : "?";
}

void
conf_executors_init(struct conf *c)
{
	c->executors = xcalloc(1, sizeof(*c->executors));
	c->executors[0].name = xstrdup("local");
	c->executors[0].type = CONF_EXEC_LOCAL;
	c->executors[0].keys = &c->local;
	c->nexecutors = 1;
}

void
conf_executors_free(struct conf *c)
{
	for (size_t i = 0; i < c->nexecutors; i++) {
		free(c->executors[i].name);
		if (c->executors[i].keys != &c->local)
			free(c->executors[i].keys);
	}
	free(c->executors);
	c->executors = NULL;
	c->nexecutors = 0;
}

const struct conf_executor *
conf_executor_find(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nexecutors; i++)
		if (strcmp(c->executors[i].name, name) == 0)
			return &c->executors[i];
	return NULL;
}

/* An executor's mapping, read twice: first for its type, then for the type's keys. */
struct exec_arg {
	struct fy_node *type_key, *type_val;
	struct conf_generic_arg g; /* the type's keys */
};

static bool
is_type_key(const char *k, size_t klen)
{
	return klen == 4 && memcmp(k, "type", 4) == 0;
}

static void
type_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
          void *arg)
{
	struct exec_arg *ea = arg;

	(void)p;
	if (is_type_key(k, klen) && ea->type_key == NULL) { /* a repeat: conf_dup_keys says so */
		ea->type_key = key;
		ea->type_val = v;
	}
}

static void
keys_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
          void *arg)
{
	struct exec_arg *ea = arg;

	if (!is_type_key(k, klen))
		conf_generic_pair(p, key, k, klen, v, &ea->g);
}

/* The type executor NAME (Q quoted) declares in EA, or -1 (reported). */
static int
exec_type_of(struct pctx *p, const struct exec_arg *ea, const char *q, struct diag_pos at)
{
	struct fy_node *v;
	const char *sug;
	char *s, *tq;
	int t = -1;

	if (ea->type_key == NULL) {
		conf_err(p, at, "executor %s needs a \"type\": ssh, digitalocean or slurm", q);
		return -1;
	}
	if ((v = conf_deref(p, ea->type_val)) == NULL && ea->type_val != NULL)
		return -1;
	if ((s = conf_get_str(p, "type", v, conf_pos(p, ea->type_key))) == NULL)
		return -1;
	for (size_t i = 0; i < EPH_ARRAY_LEN(exec_types); i++)
		if (strcmp(s, exec_types[i].name) == 0)
			t = (int)i;
	if (t < 0) {
		tq = conf_quote_redacted(s);
		if ((sug = conf_key_suggest(&type_sec, s, strlen(s))) != NULL)
			conf_err(p, conf_pos(p, v),
			         "unknown executor type %s (did you mean \"%s\"?)", tq, sug);
		else
			conf_err(
			        p, conf_pos(p, v),
			        "unknown executor type %s (the types are: local, ssh, digitalocean, slurm)",
			        tq);
		free(tq);
	}
	free(s);
	return t;
}

void
conf_executors_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen,
                    struct fy_node *v, void *arg)
{
	struct conf *c = p->c;
	struct diag_pos at = conf_pos(p, key);
	bool local = klen == 5 && memcmp(k, "local", 5) == 0;
	struct exec_arg ea;
	struct conf_executor *e;
	struct fy_node *m;
	char *q = conf_quote(k, klen);
	int t;

	(void)arg;
	memset(&ea, 0, sizeof(ea));
	if (!conf_name_ok(k, klen))
		conf_err(
		        p, at,
		        "bad executor name %s: use at most %d lowercase letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit",
		        q, CONF_JOB_NAME_MAX);
	if (local) {
		e = &c->executors[0];
	} else if (c->nexecutors > CONF_MAX_EXECUTORS) {
		conf_err(p, at, "more than %d executors", CONF_MAX_EXECUTORS);
		goto out;
	} else {
		/* listed whatever its faults: a job naming it is not reported again */
		c->executors =
		        xreallocarray(c->executors, c->nexecutors + 1, sizeof(*c->executors));
		e = &c->executors[c->nexecutors++];
		memset(e, 0, sizeof(*e));
		e->name = xstrndup(k, klen);
	}
	e->line = at.line;
	e->col = at.col;
	if ((m = conf_want_map(p, e->name, key, v)) == NULL)
		goto out;
	conf_map_walk(p, m, type_pair, &ea);
	if (local && ea.type_key == NULL) {
		t = CONF_EXEC_LOCAL;
	} else if ((t = exec_type_of(p, &ea, q, at)) < 0) {
		goto out; /* its keys depend on the type: they are not judged */
	} else if (local && t != CONF_EXEC_LOCAL) {
		conf_err(
		        p, conf_pos(p, ea.type_val),
		        "executor \"local\" is this machine, of type \"local\": give the %s executor another name",
		        conf_exec_type_name((enum conf_exec_type)t));
		goto out;
	} else if (!local && t == CONF_EXEC_LOCAL) {
		conf_err(p, conf_pos(p, ea.type_val),
		         "only the executor \"local\" is of type \"local\": it is this machine");
		goto out;
	}
	e->type = (enum conf_exec_type)t;
	if (exec_types[t].sec == NULL) {
		conf_err(p, conf_pos(p, ea.type_val),
		         "executor type \"%s\" is not available yet in this version",
		         exec_types[t].name);
		goto out;
	}
	ea.g.sec = exec_types[t].sec;
	ea.g.base = e->keys;
	conf_map_walk(p, m, keys_pair, &ea);
out:
	free(q);
}

/* "local, pool, ..." (the first EXEC_NAMES_LISTED of them), for a message. Caller frees. */
static char *
executor_names(const struct conf *c)
{

	size_t n = c->nexecutors < EXEC_NAMES_LISTED ? c->nexecutors : EXEC_NAMES_LISTED;
	size_t len = 4;
	char *s;

	for (size_t i = 0; i < n; i++)
		len += strlen(c->executors[i].name) + 2;
	s = xcalloc(1, len);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strcat(s, ", ");
		strcat(s, c->executors[i].name);
	}
	if (n < c->nexecutors)
		strcat(s, ", ...");
	return s;
}

void
conf_job_executor(struct pctx *p, struct conf_job *j, struct fy_node *v, struct diag_pos at)
{
	const struct conf *c = p->c;
	const char *sug = NULL;
	size_t bestd = 3;
	char *s, *q;

	if ((s = conf_get_str(p, "executor", v, at)) == NULL)
		return;
	for (size_t i = 0; i < c->nexecutors; i++) {
		const char *n = c->executors[i].name;
		size_t d;

		if (strcmp(s, n) == 0) {
			j->executor = n;
			j->executor_ix = (unsigned)i;
			free(s);
			return;
		}
		if ((d = conf_edit_distance(s, strlen(s), n, strlen(n), 2)) < bestd) {
			bestd = d;
			sug = n;
		}
	}
	q = conf_quote_redacted(s);
	if (sug != NULL) {
		conf_err(p, conf_pos(p, v), "unknown executor %s (did you mean \"%s\"?)", q, sug);
	} else {
		char *names = executor_names(c);

		conf_err(p, conf_pos(p, v), "unknown executor %s (the executors are: %s)", q,
		         names);
		free(names);
	}
	free(q);
	free(s);
}
