/* src/conf/conf_job.c: the jobs, and the defaults they start from: each job's keys, its
 * environment, notifications and schedule, and the checks of a job as a whole. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "conf/conf_int.h"
#include "conf/conf_keys.h"
#include "sched/cronexpr.h"
#include "sched/tz.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

/* ---- jobs ---- */

void
conf_job_clear(struct conf_job *j)
{
	free(j->name);
	free(j->schedule);
	cronexpr_free(j->cron);
	free(j->timezone);
	free(j->run);
	conf_strv_free(&j->command);
	conf_strv_free(&j->env);
	free(j->workdir);
	conf_strv_free(&j->notify.email);
	conf_strv_free(&j->secrets);
	conf_strv_free(&j->results);
	free(j->requirements);
	free(j->interpreter);
	memset(j, 0, sizeof(*j));
}

/* A deep copy of the defaults (no name, schedule or command: defaults have none). */
static void
jobb_copy(struct pctx *p, struct jobb *dst, const struct jobb *src, struct diag_pos at)
{
	*dst = *src;
	dst->j.name = NULL;
	dst->j.schedule = NULL;
	dst->j.cron = NULL;
	dst->j.run = NULL;
	dst->j.command = (struct conf_strv){ NULL, 0 };
	dst->j.timezone = conf_dup_counted(p, src->j.timezone, at);
	dst->j.workdir = conf_dup_counted(p, src->j.workdir, at);
	dst->j.requirements = conf_dup_counted(p, src->j.requirements, at);
	dst->j.interpreter = conf_dup_counted(p, src->j.interpreter, at);
	dst->j.env = (struct conf_strv){ NULL, 0 };
	conf_strv_copy(p, &dst->j.env, &src->j.env, at);
	dst->j.notify.email = (struct conf_strv){ NULL, 0 };
	conf_strv_copy(p, &dst->j.notify.email, &src->j.notify.email, at);
	dst->j.secrets = (struct conf_strv){ NULL, 0 };
	conf_strv_copy(p, &dst->j.secrets, &src->j.secrets, at);
	dst->j.results = (struct conf_strv){ NULL, 0 };
	conf_strv_copy(p, &dst->j.results, &src->j.results, at);
	dst->email_from_defaults = src->j.notify.email.n > 0;
}

static int
zone_get(struct pctx *p, const char *name, const struct tz **out)
{
	struct tz *z;
	int rc;

	for (size_t i = 0; i < p->c->nzones; i++) {
		if (p->zone_names[i] != NULL && strcmp(p->zone_names[i], name) == 0) {
			*out = p->c->zones[i];
			return 0;
		}
	}
	rc = tz_load(name, &z);
	if (rc < 0)
		return rc;
	p->c->zones = xreallocarray(p->c->zones, p->c->nzones + 1, sizeof(*p->c->zones));
	p->zone_names = xreallocarray(p->zone_names, p->c->nzones + 1, sizeof(*p->zone_names));
	p->c->zones[p->c->nzones] = z;
	p->zone_names[p->c->nzones] = xstrdup(name);
	p->c->nzones++;
	*out = z;
	return 0;
}

static bool
env_name_ok(const char *k, size_t n)
{
	if (n == 0 ||
	    !((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
		      (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return false;
	return true;
}

/* The variables the agent sets for the command (src/agent/agent.c): a job's own would be
 * silently replaced. */
static const char *const env_reserved[] = {
	"EPH_RUN_ID", "EPH_JOB", "EPH_ATTEMPT", "EPH_SCHEDULED_AT", "EPH_COMMIT", "EPH_RESULTS",
};

static bool
env_name_reserved(const char *k, size_t n)
{
	for (size_t i = 0; i < EPH_ARRAY_LEN(env_reserved); i++)
		if (strlen(env_reserved[i]) == n && memcmp(env_reserved[i], k, n) == 0)
			return true;
	return false;
}

/* One env mapping being read: its variables in order, merged into the inherited ones once
 * it is read (env_merge). A mapping has no two equal keys (conf_dup_keys) and merged keys are
 * shadowed (conf_map_walk), so these are distinct. */
struct env_arg {
	struct conf_strv vars;                /* "KEY=VALUE" */
	struct diag_pos at[CONF_MAX_ENV + 1]; /* where each stands */
	bool too_many;
};

static void
env_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
         void *arg)
{
	struct env_arg *ea = arg;
	struct diag_pos at = conf_pos(p, key);
	const char *s;
	size_t len;
	char *kv, *q;

	if (ea->too_many)
		return;
	if (!env_name_ok(k, klen)) {
		q = conf_quote(k, klen);
		conf_err(
		        p, at,
		        "%s is not a valid environment variable name (letters, digits and _, not starting with a digit)",
		        q);
		free(q);
		return;
	}
	if (env_name_reserved(k, klen)) {
		q = conf_quote(k, klen);
		conf_err(
		        p, at,
		        "environment variable %s is reserved: ephemeron sets EPH_RUN_ID, EPH_JOB, EPH_ATTEMPT, EPH_SCHEDULED_AT, EPH_COMMIT and EPH_RESULTS for each run",
		        q);
		free(q);
		return;
	}
	v = conf_deref(p, v);
	if (v == NULL || !fy_node_is_scalar(v)) {
		q = conf_quote(k, klen);
		conf_err(p, conf_pos_or(p, v, at),
		         "environment variable %s must be a single value, not %s", q,
		         conf_node_kind(v));
		free(q);
		return;
	}
	s = fy_node_get_scalar(v, &len);
	if (s == NULL)
		s = "";
	if (memchr(s, '\0', len) != NULL) {
		q = conf_quote(k, klen);
		conf_err(p, conf_pos_or(p, v, at),
		         "environment variable %s contains a NUL character", q);
		free(q);
		return;
	}
	if (ea->vars.n == CONF_MAX_ENV) {
		conf_err(p, at, "more than %d environment variables", CONF_MAX_ENV);
		ea->too_many = true;
		return;
	}
	if (!conf_charge(p, klen + len + 1, at))
		return;
	kv = xmalloc(klen + len + 2);
	memcpy(kv, k, klen);
	kv[klen] = '=';
	memcpy(kv + klen + 1, s, len);
	kv[klen + len + 1] = '\0';
	ea->at[ea->vars.n] = at;
	conf_strv_push(&ea->vars, kv);
}

/* A variable's name, for sorting: "NAME=..." up to the '='. */
struct env_name {
	const char *s;
	size_t len, idx;
};

static int
env_name_cmp(const void *a, const void *b)
{
	const struct env_name *x = a, *y = b;
	int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* Moves the variables of EA into ENV: one of the same name replaces it in its place, the
 * others are appended, in order. Sorted names: no variable is compared with every other. */
static void
env_merge(struct pctx *p, struct conf_strv *env, struct env_arg *ea)
{
	struct env_name *names;
	size_t n0 = env->n, i;

	if (n0 == 0) {
		*env = ea->vars;
		return;
	}
	names = xreallocarray(NULL, n0 + 1, sizeof(*names));
	for (i = 0; i < n0; i++)
		names[i] = (struct env_name){ env->v[i], strcspn(env->v[i], "="), i };
	qsort(names, n0, sizeof(*names), env_name_cmp);
	for (i = 0; i < ea->vars.n; i++) {
		char *kv = ea->vars.v[i];
		struct env_name key = { kv, strcspn(kv, "="), 0 }, *hit;

		hit = bsearch(&key, names, n0, sizeof(*names), env_name_cmp);
		if (hit != NULL) {
			free(env->v[hit->idx]);
			env->v[hit->idx] = kv;
			hit->s = kv;
		} else if (env->n < CONF_MAX_ENV) {
			conf_strv_push(env, kv);
		} else {
			if (!ea->too_many)
				conf_err(p, ea->at[i], "more than %d environment variables",
				         CONF_MAX_ENV);
			ea->too_many = true;
			free(kv);
		}
	}
	free(names);
	free(ea->vars.v);
}

static void
notify_special(struct pctx *p, const struct conf_key *ck, struct fy_node *key, struct fy_node *v,
               void *arg)
{
	struct jobb *jb = arg;
	struct diag_pos at = conf_pos(p, key);

	if (ck->id == K_NOTIFY_EMAIL) {
		struct conf_strv sv = { NULL, 0 };

		if (conf_get_strv(p, "email", v, at, &sv, true, true) == 0) {
			conf_strv_free(&jb->j.notify.email);
			jb->j.notify.email = sv;
			jb->email_at = at;
			jb->email_from_defaults = false;
		}
	} else if (ck->id == K_NOTIFY_ON) {
		struct conf_strv sv = { NULL, 0 };
		unsigned bits = 0;
		bool ok = true;

		void *it = NULL;

		if (conf_get_strv(p, "on", v, at, &sv, true, false) < 0)
			return;
		for (size_t i = 0; i < sv.n; i++) {
			/* the item's node, for its position: conf_get_strv kept them all, in order
			 */
			struct fy_node *item =
			        fy_node_is_sequence(v) ? fy_node_sequence_iterate(v, &it) : v;
			size_t b;

			for (b = 0; conf_notify_on_names[b] != NULL; b++)
				if (strcmp(conf_notify_on_names[b], sv.v[i]) == 0)
					break;
			if (conf_notify_on_names[b] != NULL) {
				bits |= 1u << b;
				continue;
			}
			char *q = conf_quote_redacted(sv.v[i]);

			conf_err(
			        p, conf_pos_or(p, item, at),
			        "unknown notify.on event %s (use failure, oom, timeout, lost, success, always or recovered)",
			        q);
			free(q);
			ok = false;
		}
		if (ok)
			jb->j.notify.on = bits;
		conf_strv_free(&sv);
	}
}

/* "command": a list whose first item is the program, neither blank nor an option (as
 * "-x": every program would read it as one, and none is named so). */
static void
command_set(struct pctx *p, struct fy_node *v, struct diag_pos at, struct conf_job *j)
{
	struct conf_strv sv = { NULL, 0 };
	struct diag_pos at0;
	char *q;

	if (conf_get_strv(p, "command", v, at, &sv, false, false) < 0)
		return;
	at0 = conf_pos_or(p, fy_node_sequence_get_by_index(v, 0), at);
	if (conf_blank(sv.v[0]) || sv.v[0][0] == '-') {
		q = conf_quote_redacted(sv.v[0]);
		if (conf_blank(sv.v[0]))
			conf_err(p, at0, "\"command\" must start with a program, not %s", q);
		else
			conf_err(
			        p, at0,
			        "\"command\" must start with a program, not the option %s (a command is [PROGRAM, ARGUMENT, ...])",
			        q);
		free(q);
		conf_strv_free(&sv);
		return;
	}
	conf_strv_free(&j->command);
	j->command = sv;
}

/* "results": a glob or a list of them, each relative to the working directory and staying in
 * it (no absolute path, no ".." component). */
static void
results_set(struct pctx *p, struct fy_node *v, struct diag_pos at, struct conf_job *j)
{
	struct conf_strv sv = { NULL, 0 };

	if (conf_get_strv(p, "results", v, at, &sv, true, false) < 0)
		return;
	for (size_t i = 0; i < sv.n; i++) {
		const char *g = sv.v[i];
		size_t l = strlen(g);
		bool up = strcmp(g, "..") == 0 || strncmp(g, "../", 3) == 0 ||
		          strstr(g, "/../") != NULL || (l >= 3 && strcmp(g + l - 3, "/..") == 0);

		if (conf_blank(g) || g[0] == '/' || up) {
			char *q = conf_quote_redacted(g);

			conf_err(
			        p, conf_pos_or(p, fy_node_sequence_get_by_index(v, (int)i), at),
			        "\"results\": %s must be a glob relative to the working directory, "
			        "inside it (no leading /, no ..)",
			        q);
			free(q);
		}
	}
	conf_strv_free(&j->results);
	j->results = sv;
}

/* Compiles schedule S, whose text starts at AT, into *OUT; its errors go through conf_err. */
static void
schedule_parse(struct pctx *p, const char *s, struct diag_pos at, struct cronexpr **out)
{
	struct diag cd;

	diag_init(&cd);
	if (cronexpr_parse(s, &at, out, &cd) < 0 && diag_nerrors(&cd) == 0)
		conf_err(p, at, "bad schedule");
	for (size_t i = 0; i < cd.n; i++)
		conf_err(p, (struct diag_pos){ p->file, cd.items[i].line, cd.items[i].col }, "%s",
		         cd.items[i].msg);
	diag_free(&cd);
}

/* "schedule": compiled, its errors at their columns. */
static void
job_schedule(struct pctx *p, struct jobb *jb, struct fy_node *v, struct diag_pos at)
{
	struct conf_job *j = &jb->j;
	char *s;
	struct diag_pos cat;

	jb->has_schedule = true;
	if ((s = conf_get_str(p, "schedule", v, at)) == NULL)
		return;
	/* libfyaml marks a quoted scalar at its first character, inside the quote:
	 * that is already the column of TEXT's first byte */
	cat = conf_pos(p, v);
	free(j->schedule);
	cronexpr_free(j->cron);
	j->cron = NULL;
	j->schedule = s;
	schedule_parse(p, s, cat, &j->cron);
}

/* "timezone": an IANA zone, loaded once for all the jobs that name it. */
static void
job_timezone(struct pctx *p, struct conf_job *j, struct fy_node *v, struct diag_pos at)
{
	char *s;
	const struct tz *z;
	char *q;
	int rc;

	if ((s = conf_get_str(p, "timezone", v, at)) == NULL)
		return;
	rc = zone_get(p, s, &z);
	if (rc == 0) {
		free(j->timezone);
		j->timezone = s;
		j->tz = z;
		return;
	}
	q = conf_quote_redacted(s);
	if (rc == -ENOENT)
		conf_err(p, conf_pos(p, v),
		         "unknown time zone %s (use an IANA name, as Europe/Berlin or UTC)", q);
	else if (rc == -EINVAL)
		conf_err(p, conf_pos(p, v),
		         "%s is not a time zone name (use an IANA name, as Europe/Berlin or UTC)",
		         q);
	else
		conf_err(p, conf_pos(p, v), "cannot load time zone %s: %s", q, strerror(-rc));
	free(q);
	free(s);
}

/* "env": its variables merged into the inherited ones. */
static void
job_env(struct pctx *p, struct conf_job *j, struct fy_node *key, struct fy_node *v)
{
	struct fy_node *m = conf_want_map(p, "env", key, v);

	if (m != NULL) {
		struct env_arg *ea = xcalloc(1, sizeof(*ea));

		conf_map_walk(p, m, env_pair, ea);
		env_merge(p, &j->env, ea);
		free(ea);
	}
}

/* "workdir": a relative path that stays inside the repository. */
static void
job_workdir(struct pctx *p, struct conf_job *j, struct fy_node *v, struct diag_pos at)
{
	char *s;
	int depth = 0;
	bool bad = false;

	if ((s = conf_get_str(p, "workdir", v, at)) == NULL)
		return;
	if (conf_blank(s)) {
		conf_err(p, conf_pos(p, v), "\"workdir\" is only whitespace");
		free(s);
		return;
	}
	if (s[0] == '/') {
		conf_err(p, conf_pos(p, v),
		         "\"workdir\" must be relative to the repository, not absolute");
		free(s);
		return;
	}
	for (const char *c = s; *c != '\0' && !bad;) {
		size_t n = strcspn(c, "/");

		if (n == 2 && c[0] == '.' && c[1] == '.')
			bad = --depth < 0;
		else if (n > 0 && !(n == 1 && c[0] == '.'))
			depth++;
		c += n;
		while (*c == '/')
			c++;
	}
	if (bad) {
		conf_err(p, conf_pos(p, v),
		         "\"workdir\" must stay inside the repository (it climbs out with \"..\")");
		free(s);
		return;
	}
	free(j->workdir);
	j->workdir = s;
}

/* One key of memory's mapping: auto, min or max, with where max was written. */
static void
memory_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
            void *arg)
{
	struct jobb *jb = arg;
	const struct conf_key *ck = conf_key_find(&conf_sec_memory, k, klen);

	if (ck == NULL) {
		conf_unknown_key(
		        p, &conf_sec_memory, key, k, klen,
		        " in \"memory\" (a size, auto, or a mapping {auto: true, min: SIZE, max: SIZE})");
		return;
	}
	if (v != NULL && (v = conf_deref(p, v)) == NULL)
		return; /* a broken alias, reported */
	if (strcmp(ck->name, "max") == 0)
		jb->memory_max_written = true;
	conf_set_generic(p, ck, v, conf_pos(p, key), &jb->j);
}

/* "memory": a size (a fixed limit), "auto", or {auto: true, min: SIZE, max: SIZE}: each
 * form replaces what the defaults said. */
static void
job_memory(struct pctx *p, struct jobb *jb, const struct conf_key *ck, struct fy_node *v,
           struct diag_pos at)
{
	struct conf_job *j = &jb->j;
	size_t before = conf_nerrors(p);
	const char *s;
	size_t len;

	jb->memory_at = conf_pos_or(p, v, at);
	j->memory = 0;
	j->memory_auto = false;
	j->memory_min = CONF_MEMORY_MIN_DEFAULT;
	j->memory_max = 0;
	jb->memory_max_written = false;
	if (v != NULL && fy_node_is_scalar(v) && (s = fy_node_get_scalar(v, &len)) != NULL &&
	    len == 4 && memcmp(s, "auto", 4) == 0) {
		j->memory_auto = true;
		return;
	}
	if (v == NULL || !fy_node_is_mapping(v)) {
		conf_set_generic(p, ck, v, at, j);
		return;
	}
	conf_map_walk(p, v, memory_pair, jb);
	if (conf_nerrors(p) != before)
		return;
	if (!j->memory_auto) {
		conf_err(
		        p, conf_pos_or(p, v, at),
		        "\"memory\" as a mapping sizes the limit from the job's runs: it needs auto: true (for a fixed limit write memory: SIZE)");
		return;
	}
	if (j->memory_max > 0 && j->memory_min > j->memory_max) {
		char a[32], b[32];

		units_format_size(j->memory_min, a, sizeof(a));
		units_format_size(j->memory_max, b, sizeof(b));
		conf_err(p, conf_pos_or(p, fy_node_mapping_lookup_by_string(v, "max", 3), at),
		         "memory's max (%s) is less than its min (%s)", b, a);
	}
}

/* "notify": merged per sub-key into the inherited one. */
static void
job_notify(struct pctx *p, struct jobb *jb, struct fy_node *key, struct fy_node *v)
{
	struct conf_job *j = &jb->j;
	struct fy_node *m = conf_want_map(p, "notify", key, v);
	struct conf_generic_arg g = { &conf_sec_notify, &j->notify, notify_special, jb };

	if (m != NULL)
		conf_map_walk(p, m, conf_generic_pair, &g);
}

void
conf_job_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
              void *arg)
{
	struct conf_job_arg *ja = arg;
	struct jobb *jb = ja->jb;
	struct conf_job *j = &jb->j;
	const struct conf_key *ck = conf_key_find(&conf_sec_job, k, klen);
	struct diag_pos at = conf_pos(p, key);

	if (ck == NULL) {
		conf_unknown_key(p, &conf_sec_job, key, k, klen, NULL);
		return;
	}
	if (!ja->defaults && ck->id == K_RUN)
		jb->run_at = at;
	else if (!ja->defaults && ck->id == K_COMMAND)
		jb->command_at = at;
	else if (ck->id == K_SCHEDULE)
		jb->has_schedule = true;
	if (v != NULL && (v = conf_deref(p, v)) == NULL)
		return; /* a broken alias, reported */
	if (ja->defaults && (ck->id == K_SCHEDULE || ck->id == K_RUN || ck->id == K_COMMAND)) {
		conf_err(p, at, "\"%s\" cannot be a default: set it in each job", ck->name);
		return;
	}
	switch (ck->id) {
	case K_SCHEDULE:
		job_schedule(p, jb, v, at);
		return;
	case K_COMMAND:
		command_set(p, v, at, j);
		return;
	case K_MEMORY:
		job_memory(p, jb, ck, v, at);
		return;
	case K_RETRY_ON_OOM:
		jb->oom_retry_at = conf_pos_or(p, v, at);
		conf_set_generic(p, ck, v, at, j);
		return;
	case K_TIMEZONE:
		job_timezone(p, j, v, at);
		return;
	case K_EXECUTOR:
		jb->executor_at = conf_pos_or(p, v, at);
		conf_job_executor(p, j, v, at);
		return;
	case K_ENV:
		job_env(p, j, key, v);
		return;
	case K_WORKDIR:
		job_workdir(p, j, v, at);
		return;
	case K_NOTIFY:
		job_notify(p, jb, key, v);
		return;
	case K_RESULTS:
		results_set(p, v, at, j);
		return;
	case K_JOB_SECRETS:
		jb->secrets_at = at;
		conf_job_secrets(p, jb, key, v);
		return;
	default: /* K_RUN and the generic keys */
		conf_set_generic(p, ck, v, at, j);
		return;
	}
}

/* The checks of memory: auto and retry_on_oom: grow of job JB (named at AT, Q its name
 * quoted): a local job's sizes within memory_budget (its max is the budget unless written),
 * and grow's max written. */
static void
job_check_auto(struct pctx *p, struct jobb *jb, const char *q, struct diag_pos at)
{
	struct conf_job *j = &jb->j;
	uint64_t budget = p->c->local.memory_budget;
	struct diag_pos mat = jb->memory_at.line > 0 ? jb->memory_at : at;
	char a[32], b[32];

	if (j->retry_on_oom == CONF_OOM_RETRY_GROW && !(j->memory_auto && jb->memory_max_written))
		conf_err(
		        p, jb->oom_retry_at.line > 0 ? jb->oom_retry_at : at,
		        "job %s has retry_on_oom: grow but no size to grow up to: write memory: {auto: true, max: SIZE}",
		        q);
	if (!j->memory_auto || j->executor_ix != 0)
		return;
	units_format_size(budget, b, sizeof(b));
	if (j->memory_min > budget) {
		units_format_size(j->memory_min, a, sizeof(a));
		conf_err(
		        p, mat,
		        "job %s has memory min %s, more than executors.local.memory_budget (%s): it could never start",
		        q, a, b);
	} else if (j->memory_max > budget) {
		units_format_size(j->memory_max, a, sizeof(a));
		conf_err(
		        p, mat,
		        "job %s has memory max %s, more than executors.local.memory_budget (%s): a run that large could never start",
		        q, a, b);
	} else if (j->memory_max == 0) {
		j->memory_max = budget;
	}
}

/* The checks of job JB (named at AT, Q its name quoted) as a whole, once its keys are read:
 * what it lacks, what contradicts, and what the other sections make impossible. */
static void
job_check(struct pctx *p, struct jobb *jb, const char *q, struct diag_pos at)
{
	if (!jb->has_schedule)
		conf_err(p, at, "job %s has no \"schedule\"", q);
	if (jb->run_at.line > 0 && jb->command_at.line > 0) {
		struct diag_pos later = jb->run_at.line > jb->command_at.line ||
		                                        (jb->run_at.line == jb->command_at.line &&
		                                         jb->run_at.col > jb->command_at.col)
		                                ? jb->run_at
		                                : jb->command_at;

		conf_err(p, later, "job %s has both \"run\" and \"command\": keep one", q);
	} else if (jb->run_at.line == 0 && jb->command_at.line == 0) {
		conf_err(
		        p, at,
		        "job %s needs \"run\" (a shell command line) or \"command\" (a list of arguments)",
		        q);
	}
	if (jb->j.memory > p->c->local.memory_budget && jb->j.executor_ix == 0) {
		char a[32], b[32];

		units_format_size(jb->j.memory, a, sizeof(a));
		units_format_size(p->c->local.memory_budget, b, sizeof(b));
		conf_err(
		        p, jb->memory_at.line > 0 ? jb->memory_at : at,
		        "job %s needs memory %s, more than executors.local.memory_budget (%s): it could never start",
		        q, a, b);
	}
	job_check_auto(p, jb, q, at);
	conf_executor_job_check(p, jb, q, at);
	conf_secrets_job_check(p, jb, q, at);
	if (jb->j.notify.email.n > 0 && p->c->mail.smtp == NULL &&
	    !(jb->email_from_defaults && p->defaults_email_reported)) {
		conf_err(p, jb->email_at.line > 0 ? jb->email_at : at,
		         "notify.email needs a \"mail\" section with \"smtp\" to send through");
		if (jb->email_from_defaults)
			p->defaults_email_reported = true;
	}
}

void
conf_jobs_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
               void *arg)
{
	struct conf_jobs_arg *ja = arg;
	struct diag_pos at = conf_pos(p, key);
	struct jobb jb;
	struct conf_job_arg jarg = { &jb, false };
	struct fy_node *m;
	size_t before = conf_nerrors(p);
	char *q;

	if (ja->too_many || p->halted)
		return;
	if (ja->n == CONF_MAX_JOBS) {
		conf_err(p, at, "more than %d jobs", CONF_MAX_JOBS);
		ja->too_many = true;
		return;
	}
	if (!conf_name_ok(k, klen)) {
		q = conf_quote(k, klen);
		conf_err(
		        p, at,
		        "bad job name %s: use at most %d lowercase letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit",
		        q, CONF_JOB_NAME_MAX);
		free(q);
	}
	if (v != NULL && (v = conf_deref(p, v)) == NULL)
		return;
	if (v == NULL || !fy_node_is_mapping(v)) {
		q = conf_quote(k, klen);
		conf_err(p, conf_pos_or(p, v, at),
		         "job %s must be a mapping (schedule, run, ...), not %s", q,
		         conf_node_kind(v));
		free(q);
		return;
	}
	m = v;
	jobb_copy(p, &jb, ja->dflt, at);
	jb.j.name = xstrndup(k, klen);
	jb.j.line = at.line;
	jb.j.col = at.col;
	conf_map_walk(p, m, conf_job_pair, &jarg);
	if (!p->halted) { /* else its keys were not all read: the checks would mislead */
		q = conf_quote(k, klen);
		job_check(p, &jb, q, at);
		free(q);
	}
	if (conf_nerrors(p) != before || p->halted) {
		conf_job_clear(&jb.j);
		return;
	}
	if (ja->n == ja->cap) {
		ja->cap = ja->cap ? ja->cap * 2 : 16;
		ja->jobs = xreallocarray(ja->jobs, ja->cap, sizeof(*ja->jobs));
	}
	ja->jobs[ja->n++] = jb.j;
}
