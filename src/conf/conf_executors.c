/* src/conf/conf_executors.c: the executors mapping, a name to {type, the type's keys}, and
 * the job's "executor:" that names one of them.
 *
 * Each type reads its own keys with its own table: local's is conf_keys.c's conf_sec_local,
 * ssh's is conf_exec_ssh.c's. A later type (digitalocean, slurm) adds its settings struct to
 * conf.h, its keys table and checks in a file of its own (conf_exec_ssh.c shows how), and
 * fills its row of exec_types below; nothing else changes. Until then its row has no keys,
 * and validation refuses the type without reading them.
 *
 * A type whose keys are written but whose executor is not built yet has its keys read and
 * checked, every error reported, and then the type refused: its row says available = false.
 * Flipping that one column on is what makes the type usable. */
#include <assert.h>
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
	const struct conf_section *sec; /* its keys; NULL: none yet (refused, keys not read) */
	bool available;                 /* its executor is built: validation accepts the type */
	/* reads and checks the keys of E from its mapping M into a new E->keys; NULL: the
	 * generic keys of SEC, into the struct E->keys already points to (local) */
	void (*read)(struct pctx *p, struct conf_executor *e, struct fy_node *m,
	             struct diag_pos keyat);
	void (*free)(void *keys); /* frees what READ made */
	/* the checks a job on E owes the type (conf_executor_job_check); NULL: none */
	void (*job_check)(struct pctx *p, const struct conf_executor *e, bool keys_ok,
	                  const struct jobb *jb, const char *q, struct diag_pos at);
};

static const struct exec_type exec_types[] = {
	[CONF_EXEC_LOCAL] = { "local", &conf_sec_local, true, NULL, NULL, NULL },
	/* src/exec/exec_ssh.c */
	[CONF_EXEC_SSH] = { "ssh", &conf_sec_ssh, true, conf_ssh_read, conf_ssh_free,
	                    conf_ssh_job_check },
	/* src/exec/exec_do.c */
	[CONF_EXEC_DIGITALOCEAN] = { "digitalocean", &conf_sec_do, true, conf_do_read, conf_do_free,
	                             conf_do_job_check },
	/* src/exec/exec_slurm.c */
	[CONF_EXEC_SLURM] = { "slurm", &conf_sec_slurm, true, conf_slurm_read, conf_slurm_free,
	                      conf_slurm_job_check },
};

/* conf_exec_allow_unfinished, conf_assume_from_repo */
static bool allow_unfinished, from_repo;

void
conf_exec_allow_unfinished(bool on)
{
	allow_unfinished = on;
}

void
conf_assume_from_repo(bool on)
{
	from_repo = on;
}

bool
conf_from_repo(void)
{
	return from_repo;
}

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
		struct conf_executor *e = &c->executors[i];

		free(e->name);
		if (e->keys != NULL && e->keys != &c->local) {
			assert(exec_types[e->type].free != NULL);
			exec_types[e->type].free(e->keys);
		}
	}
	free(c->executors);
	c->executors = NULL;
	c->nexecutors = 0;
}

const struct conf_ssh *
conf_executor_ssh(const struct conf_executor *e)
{
	return e != NULL && e->type == CONF_EXEC_SSH ? e->keys : NULL;
}

const struct conf_do *
conf_executor_do(const struct conf_executor *e)
{
	return e != NULL && e->type == CONF_EXEC_DIGITALOCEAN ? e->keys : NULL;
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
	size_t ix, before;
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
	ix = (size_t)(e - c->executors);
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
	if (exec_types[t].sec == NULL)
		goto refuse; /* no keys yet: they are not judged */
	before = conf_nerrors(p);
	if (exec_types[t].read != NULL) {
		exec_types[t].read(p, e, m, at);
	} else {
		ea.g.sec = exec_types[t].sec;
		ea.g.base = e->keys;
		conf_map_walk(p, m, keys_pair, &ea);
	}
	p->exec_bad[ix] = conf_nerrors(p) != before;
	if (exec_types[t].available || allow_unfinished)
		goto out;
refuse:
	conf_err(p, conf_pos(p, ea.type_val),
	         "executor type \"%s\" is not available yet in this version", exec_types[t].name);
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

void
conf_executor_job_check(struct pctx *p, const struct jobb *jb, const char *q, struct diag_pos at)
{
	const struct conf_executor *e;

	if (jb->j.executor_ix >= p->c->nexecutors)
		return;
	e = &p->c->executors[jb->j.executor_ix];
	if (e->keys != NULL && exec_types[e->type].job_check != NULL)
		exec_types[e->type].job_check(p, e, !p->exec_bad[jb->j.executor_ix], jb, q, at);
}
