/* src/conf/conf_section.c: the top level of the jobs file and its sections other than the
 * jobs (source, python, mail, retention; executors are conf_executors.c's), with their
 * defaults. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libfyaml.h>

#include "conf/conf_int.h"
#include "conf/conf_keys.h"
#include "sched/tz.h"
#include "util/diag.h"
#include "util/xalloc.h"

/* ---- sections ---- */

static void
mail_special(struct pctx *p, const struct conf_key *ck, struct fy_node *key, struct fy_node *v,
             void *arg)
{
	struct conf_mail *m = arg;
	struct diag_pos at = conf_pos(p, key);
	char *s, *q;

	switch (ck->id) {
	case K_SMTP:
		if ((s = conf_get_str(p, "smtp", v, at)) == NULL)
			return;
		if ((strncmp(s, "smtp://", 7) != 0 || s[7] == '\0' || s[7] == '/') &&
		    (strncmp(s, "smtps://", 8) != 0 || s[8] == '\0' || s[8] == '/')) {
			q = conf_quote_redacted(s);
			conf_err(
			        p, conf_pos(p, v),
			        "\"smtp\" must be smtp://HOST[:PORT] or smtps://HOST[:PORT], not %s",
			        q);
			free(q);
			free(s);
			return;
		}
		q = strstr(s, "://") + 3;
		if (memchr(q, '@', strcspn(q, "/?#")) != NULL) {
			/* the value is not echoed: it holds a password or a user name */
			conf_err(
			        p, conf_pos(p, v),
			        "\"smtp\" must not hold a user name or password (USER[:PASSWORD]@): "
			        "set mail.username and mail.password_file instead");
			free(s);
			return;
		}
		free(m->smtp);
		m->smtp = s;
		return;
	case K_FROM:
		if ((s = conf_get_str(p, "from", v, at)) == NULL)
			return;
		if (!conf_email_ok(s)) {
			q = conf_quote_redacted(s);
			conf_err(p, conf_pos(p, v), "%s is not an email address", q);
			free(q);
			free(s);
			return;
		}
		free(m->from);
		m->from = s;
		return;
	case K_ADMIN: {
		struct conf_strv sv = { NULL, 0 };

		if (conf_get_strv(p, "admin", v, at, &sv, true, true) == 0) {
			conf_strv_free(&m->admin);
			m->admin = sv;
		}
		return;
	}
	default:
		assert(0 && "not a special mail key");
	}
}

static void
python_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
            void *arg)
{
	const struct conf_key *ck = conf_key_find(&conf_sec_python, k, klen);
	char *s;

	(void)arg;
	if (ck == NULL) {
		conf_unknown_key(p, &conf_sec_python, key, k, klen, NULL);
		return;
	}
	if ((s = conf_get_str(p, ck->name, conf_deref(p, v), conf_pos(p, key))) == NULL)
		return;
	if (conf_blank(s)) {
		conf_err(p, conf_pos(p, v), "\"%s\" is only whitespace", ck->name);
		free(s);
		return;
	}
	if (ck->id == K_REQUIREMENTS) {
		free(p->py_requirements);
		p->py_requirements = s;
	} else {
		free(p->py_interpreter);
		p->py_interpreter = s;
	}
}

/* 80% of the machine's memory: MemTotal from /proc/meminfo, else sysconf. */
static uint64_t
default_memory_budget(void)
{
	uint64_t total = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	if (f != NULL) {
		char line[256]; /* our own file's lines, not user input */
		unsigned long long kb;

		while (fgets(line, sizeof(line), f) != NULL) {
			if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
				total = (uint64_t)kb * 1024;
				break;
			}
		}
		fclose(f);
	}
	if (total == 0) {
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

		if (pages > 0 && psz > 0)
			total = (uint64_t)pages * (uint64_t)psz;
	}
	if (total == 0)
		total = UINT64_C(1) << 30;
	return total / 10 * 8;
}

struct top {
	struct fy_node *key[K_JOBS + 1];
	struct fy_node *val[K_JOBS + 1];
};

static void
top_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
         void *arg)
{
	struct top *t = arg;
	const struct conf_key *ck = conf_key_find(&conf_sec_top, k, klen);

	if (ck == NULL && klen > 2 && memcmp(k, "x-", 2) == 0)
		return; /* an extension key, a place for anchors */
	if (ck == NULL) {
		conf_unknown_key(p, &conf_sec_top, key, k, klen, NULL);
		return;
	}
	t->key[ck->id] = key;
	t->val[ck->id] = v;
}

static int
job_cmp(const void *a, const void *b)
{
	const struct conf_job *x = a, *y = b;

	return strcmp(x->name, y->name);
}

void
conf_source_defaults(struct conf_source *s)
{
	memset(s, 0, sizeof(*s));
	s->refresh = 30;
	s->on_fetch_error = CONF_FETCH_USE_LAST;
	s->fetch_timeout = 120;
	s->keep_worktrees = 5;
}

void
conf_init_defaults(struct conf *c)
{
	conf_executors_init(c);
	conf_source_defaults(&c->source);
	c->mail.starttls = true;
	c->mail.max_age = 24 * 3600;
	c->mail.source_alarm = 3600;
	c->mail.timeout = 60;
	c->retention.days = 30;
	c->retention.runs_per_job = 1000;
	c->max_parallel = 0;
}

/* A section of the top level T that is all generic keys, into BASE; if T has it. */
static void
walk_generic(struct pctx *p, const struct top *t, enum conf_kid id, const char *name,
             const struct conf_section *sec, void *base)
{
	struct conf_generic_arg g = { sec, base, NULL, NULL };
	struct fy_node *m;

	if (t->key[id] != NULL && (m = conf_want_map(p, name, t->key[id], t->val[id])) != NULL)
		conf_map_walk(p, m, conf_generic_pair, &g);
}

/* The mail section of T, and its keys that go together. */
static void
walk_mail(struct pctx *p, const struct top *t)
{
	struct conf_mail *mail = &p->c->mail;
	struct conf_generic_arg g = { &conf_sec_mail, mail, mail_special, mail };
	struct diag_pos at;
	struct fy_node *m;

	if (t->key[K_MAIL] == NULL ||
	    (m = conf_want_map(p, "mail", t->key[K_MAIL], t->val[K_MAIL])) == NULL)
		return;
	at = conf_pos(p, t->key[K_MAIL]);
	conf_map_walk(p, m, conf_generic_pair, &g);
	if (p->halted)
		return; /* its keys were not all read */
	if (mail->smtp == NULL)
		conf_err(p, at, "\"mail\" needs \"smtp\", the server to send through");
	else if (mail->from == NULL)
		conf_err(p, at, "\"mail\" needs \"from\", the sender address");
	if (mail->password_file != NULL && mail->password_env != NULL)
		conf_err(p, at,
		         "\"mail\" has both \"password_file\" and \"password_env\": keep one");
	if (mail->username != NULL && mail->password_file == NULL && mail->password_env == NULL)
		conf_err(
		        p, at,
		        "\"mail\" has a \"username\" but no \"password_file\" or \"password_env\"");
}

/* The sections of T other than defaults and jobs, which these need first. */
static void
walk_sections(struct pctx *p, const struct top *t)
{
	struct conf *c = p->c;
	struct fy_node *m;

	walk_generic(p, t, K_SOURCE, "source", &conf_sec_source, &c->source);
	if (t->key[K_PYTHON] != NULL &&
	    (m = conf_want_map(p, "python", t->key[K_PYTHON], t->val[K_PYTHON])) != NULL)
		conf_map_walk(p, m, python_pair, NULL);
	c->local.memory_budget = 0;
	if (t->key[K_EXECUTORS] != NULL &&
	    (m = conf_want_map(p, "executors", t->key[K_EXECUTORS], t->val[K_EXECUTORS])) != NULL)
		conf_map_walk(p, m, conf_executors_pair, NULL);
	if (c->local.memory_budget == 0)
		c->local.memory_budget = default_memory_budget();
	walk_generic(p, t, K_RETENTION, "retention", &conf_sec_retention, &c->retention);
	if (t->key[K_MAX_PARALLEL] != NULL) {
		const struct conf_key *ck = conf_key_find(&conf_sec_top, "max_parallel", 12);

		conf_set_generic(p, ck, conf_deref(p, t->val[K_MAX_PARALLEL]),
		                 conf_pos(p, t->key[K_MAX_PARALLEL]), c);
	}
	walk_mail(p, t);
	if (t->key[K_SECRETS] != NULL)
		conf_secrets_read(p, t->key[K_SECRETS], t->val[K_SECRETS]);
	if (t->key[K_RESULTS_STORE] != NULL)
		conf_results_store_read(p, t->key[K_RESULTS_STORE], t->val[K_RESULTS_STORE]);
}

/* What every job starts from: these, then the defaults section of T. The caller clears
 * DFLT->j. */
static void
walk_defaults(struct pctx *p, const struct top *t, struct jobb *dflt)
{
	struct conf_job_arg jarg = { dflt, true };
	struct fy_node *m;

	memset(dflt, 0, sizeof(*dflt));
	dflt->j.kill_grace = 10;
	dflt->j.results_max = UINT64_C(1) << 30;
	dflt->j.executor = p->c->executors[0].name;
	dflt->j.executor_ix = 0;
	dflt->j.retry_backoff = 30;
	dflt->j.memory_min = CONF_MEMORY_MIN_DEFAULT;
	dflt->j.concurrency = CONF_CONC_FORBID;
	dflt->j.catchup = CONF_CATCHUP_LATEST;
	dflt->j.starting_deadline = 3600;
	dflt->j.notify.on = CONF_NOTIFY_FAILURE;
	dflt->j.interpreter = xstrdup(p->py_interpreter != NULL ? p->py_interpreter : "python3");
	dflt->j.requirements = p->py_requirements != NULL ? xstrdup(p->py_requirements) : NULL;
	if (t->key[K_DEFAULTS] != NULL &&
	    (m = conf_want_map(p, "defaults", t->key[K_DEFAULTS], t->val[K_DEFAULTS])) != NULL)
		conf_map_walk(p, m, conf_job_pair, &jarg);
}

void
conf_walk(struct pctx *p, struct fy_node *root)
{
	struct conf *c = p->c;
	struct top t;
	struct jobb dflt;
	struct conf_jobs_arg ja;
	struct fy_node *m;
	struct diag_pos file_at = { p->file, 0, 0 };

	memset(&t, 0, sizeof(t));
	memset(&ja, 0, sizeof(ja));
	conf_map_walk(p, root, top_pair, &t);
	if (p->halted)
		return; /* the top level was not all read: "no jobs" could be wrong */
	walk_sections(p, &t);
	walk_defaults(p, &t, &dflt);
	ja.dflt = &dflt;
	if (t.key[K_JOBS] == NULL) {
		conf_err(p, file_at, "no jobs: the file needs a \"jobs\" mapping");
	} else if ((m = conf_want_map(p, "jobs", t.key[K_JOBS], t.val[K_JOBS])) != NULL) {
		if (fy_node_mapping_item_count(m) == 0)
			conf_err(p, conf_pos(p, t.key[K_JOBS]), "no jobs: \"jobs\" is empty");
		else
			conf_map_walk(p, m, conf_jobs_pair, &ja);
	}
	conf_job_clear(&dflt.j);
	c->jobs = ja.jobs;
	c->njobs = ja.n;
	if (c->njobs > 1)
		qsort(c->jobs, c->njobs, sizeof(*c->jobs), job_cmp);
}

void
conf_local_zone(struct pctx *p)
{
	struct conf *c = p->c;
	struct tz *z;
	int rc;

	rc = tz_load_local(&z);
	if (rc < 0) {
		for (size_t i = 0; i < c->njobs; i++) {
			if (c->jobs[i].tz == NULL) {
				conf_err(
				        p, (struct diag_pos){ NULL, 0, 0 },
				        "cannot load the machine's time zone (%s); give each job a \"timezone\"",
				        strerror(-rc));
				break;
			}
		}
		return;
	}
	c->zones = xreallocarray(c->zones, c->nzones + 1, sizeof(*c->zones));
	p->zone_names = xreallocarray(p->zone_names, c->nzones + 1, sizeof(*p->zone_names));
	c->zones[c->nzones] = z;
	p->zone_names[c->nzones] = NULL;
	c->nzones++;
	c->local_tz = z;
	for (size_t i = 0; i < c->njobs; i++)
		if (c->jobs[i].tz == NULL)
			c->jobs[i].tz = z;
}
