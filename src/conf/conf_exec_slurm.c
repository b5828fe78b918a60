/* src/conf/conf_exec_slurm.c: the keys of an executor of type slurm (docs/slurm-executor.md):
 * the directory this machine and the cluster's nodes both see (shared_dir, where the runs'
 * directories live), what each job is submitted with (partition, account, qos, extra_args),
 * and the paths of Slurm's commands. Read with its own table, then checked as a whole; last,
 * the checks a job on it owes: a pinned commit, since its code travels as one. */
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "conf/conf_int.h"
#include "conf/conf_keys.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

#define SLURM_DIR_MAX   200 /* bytes of shared_dir: DIR/<instance>/runs/<id>/... go below */
#define SLURM_EXTRA_MAX 64  /* items of extra_args */
#define DUR_MAX         UNITS_DURATION_MAX

#define KEYS(arr) arr, EPH_ARRAY_LEN(arr)

enum { LK_TYPE, LK_SHARED_DIR, LK_EXTRA };

static const struct conf_key slurm_keys[] = {
	[LK_TYPE] = { "type", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "required", "slurm" },
	[LK_SHARED_DIR] = { "shared_dir", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "required",
	                    "a directory this machine and every node see at the same path: the "
	                    "runs' directories, the agent and the code go there" },
	[LK_EXTRA] = { "extra_args", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "none",
	               "more sbatch options, one per item (\"--constraint=ssd\")" },
	{ "partition", CK_STR, K_OTHER, offsetof(struct conf_slurm, partition), 0, 0, NULL,
	  "the cluster's default", "sbatch --partition" },
	{ "account", CK_STR, K_OTHER, offsetof(struct conf_slurm, account), 0, 0, NULL,
	  "the user's default", "sbatch --account" },
	{ "qos", CK_STR, K_OTHER, offsetof(struct conf_slurm, qos), 0, 0, NULL,
	  "the association's default", "sbatch --qos" },
	{ "sbatch", CK_STR, K_OTHER, offsetof(struct conf_slurm, sbatch), 0, 0, NULL, "sbatch",
	  "the sbatch command: a name looked up in PATH, or absolute" },
	{ "squeue", CK_STR, K_OTHER, offsetof(struct conf_slurm, squeue), 0, 0, NULL, "squeue",
	  "the squeue command" },
	{ "scontrol", CK_STR, K_OTHER, offsetof(struct conf_slurm, scontrol), 0, 0, NULL,
	  "scontrol", "the scontrol command (a job's state)" },
	{ "scancel", CK_STR, K_OTHER, offsetof(struct conf_slurm, scancel), 0, 0, NULL, "scancel",
	  "the scancel command" },
	{ "time_grace", CK_DUR, K_OTHER, offsetof(struct conf_slurm, time_grace), 0, DUR_MAX, NULL,
	  "5m",
	  "added to a job's timeout and kill_grace for sbatch --time: the agent's own preparation "
	  "(source, venv) runs inside the allocation" },
	{ "down_after", CK_DUR, K_OTHER, offsetof(struct conf_slurm, down_after), 1, DUR_MAX, NULL,
	  "30s",
	  "how long the controller fails to answer before mail.admin hears of it (longer than a "
	  "failover to a backup controller)" },
};

const struct conf_section conf_sec_slurm = { "a slurm executor", KEYS(slurm_keys) };

/* The sbatch options the executor sets itself: extra_args may not set them again. */
static const char *const own_options[] = { "--parsable", "--job-name", "--output", "--error",
	                                   "--mem",      "--time",     "--wrap",   "--export",
	                                   "--chdir",    "-J",         "-o",       "-e",
	                                   "-t",         "-D",         NULL };

struct slurm_build {
	struct conf_slurm *s;
	struct conf_generic_arg g;
	bool dir_written;
};

static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static void
dir_value(struct pctx *p, struct slurm_build *b, struct fy_node *key, struct fy_node *v)
{
	struct diag_pos at = conf_pos_or(p, v, conf_pos(p, key));
	size_t len;
	char *s, *q;

	b->dir_written = true;
	if ((s = conf_get_str(p, "shared_dir", v, conf_pos(p, key))) == NULL)
		return;
	len = strlen(s);
	while (len > 1 && s[len - 1] == '/')
		s[--len] = '\0';
	q = conf_quote_redacted(s);
	if (len > SLURM_DIR_MAX)
		conf_err(p, at, "\"shared_dir\" is longer than %d bytes", SLURM_DIR_MAX);
	else if (strpbrk(s, " \t\n\r\v\f") != NULL || has_control(s))
		conf_err(p, at, "\"shared_dir\" may not hold whitespace or control characters: %s",
		         q);
	else if (s[0] != '/')
		conf_err(
		        p, at,
		        "\"shared_dir\" must be absolute, the same path on this machine and the nodes, not %s",
		        q);
	else if (s[1] == '\0')
		conf_err(p, at, "\"shared_dir\" must be a directory of its own, not %s", q);
	else if (!conf_path_plain(s + 1))
		conf_err(p, at,
		         "\"shared_dir\" must be a plain path, without \"//\", \".\" or \"..\": %s",
		         q);
	else {
		free(b->s->shared_dir);
		b->s->shared_dir = s;
		s = NULL;
	}
	free(q);
	free(s);
}

/* Whether OPT is one of own_options, alone or with its value ("--mem=1G", "-t10"). */
static const char *
own_option(const char *opt)
{
	for (size_t i = 0; own_options[i] != NULL; i++) {
		size_t n = strlen(own_options[i]);

		if (strncmp(opt, own_options[i], n) == 0 &&
		    (opt[n] == '\0' || opt[n] == '=' || (opt[1] != '-' && n == 2)))
			return own_options[i];
	}
	return NULL;
}

static void
extra_value(struct pctx *p, struct slurm_build *b, struct fy_node *key, struct fy_node *v)
{
	struct diag_pos at = conf_pos_or(p, v, conf_pos(p, key));
	struct conf_strv sv = { NULL, 0 };
	const char *own;

	if (conf_get_strv(p, "extra_args", v, conf_pos(p, key), &sv, false, false) < 0) {
		conf_strv_free(&sv);
		return;
	}
	if (sv.n > SLURM_EXTRA_MAX) {
		conf_err(p, at, "\"extra_args\" has more than %d items", SLURM_EXTRA_MAX);
		conf_strv_free(&sv);
		return;
	}
	for (size_t i = 0; i < sv.n; i++) {
		char *q = conf_quote_redacted(sv.v[i]);

		if (sv.v[i][0] != '-')
			conf_err(
			        p, at,
			        "each item of \"extra_args\" is an sbatch option starting with \"-\" (\"--constraint=ssd\"), not %s",
			        q);
		else if (has_control(sv.v[i]))
			conf_err(p, at, "an item of \"extra_args\" holds a control character: %s",
			         q);
		else if ((own = own_option(sv.v[i])) != NULL)
			conf_err(p, at,
			         "\"extra_args\" may not set %s: the executor sets it for each run",
			         own);
		free(q);
	}
	conf_strv_free(&b->s->extra_args);
	b->s->extra_args = sv;
}

static void
slurm_special(struct pctx *p, const struct conf_key *ck, struct fy_node *key, struct fy_node *v,
              void *arg)
{
	struct slurm_build *b = arg;

	switch (ck - slurm_keys) {
	case LK_SHARED_DIR:
		dir_value(p, b, key, v);
		return;
	case LK_EXTRA:
		extra_value(p, b, key, v);
		return;
	default: /* LK_TYPE: read by conf_executors.c, never passed here */
		return;
	}
}

static void
slurm_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
           void *arg)
{
	struct slurm_build *b = arg;

	if (!(klen == 4 && memcmp(k, "type", 4) == 0)) /* the executor's type, already read */
		conf_generic_pair(p, key, k, klen, v, &b->g);
}

/* A command's path: a name (PATH) or absolute; nothing relative to a directory. */
static void
command_check(struct pctx *p, const char *name, const char *s, struct diag_pos at)
{
	char *q;

	if (strchr(s, '/') == NULL || s[0] == '/')
		return;
	q = conf_quote_redacted(s);
	conf_err(p, at, "\"%s\" must be a command's name (looked up in PATH) or absolute, not %s",
	         name, q);
	free(q);
}

void
conf_slurm_read(struct pctx *p, struct conf_executor *e, struct fy_node *m, struct diag_pos keyat)
{
	struct conf_slurm *s = xcalloc(1, sizeof(*s));
	struct slurm_build b;
	char *q;

	s->time_grace = 300;
	s->down_after = 30;
	e->keys = s;
	memset(&b, 0, sizeof(b));
	b.s = s;
	b.g = (struct conf_generic_arg){ &conf_sec_slurm, s, slurm_special, &b };
	conf_map_walk(p, m, slurm_pair, &b);
	if (p->halted)
		return; /* its keys were not all read */
	if (s->sbatch == NULL)
		s->sbatch = xstrdup("sbatch");
	if (s->squeue == NULL)
		s->squeue = xstrdup("squeue");
	if (s->scontrol == NULL)
		s->scontrol = xstrdup("scontrol");
	if (s->scancel == NULL)
		s->scancel = xstrdup("scancel");
	command_check(p, "sbatch", s->sbatch, keyat);
	command_check(p, "squeue", s->squeue, keyat);
	command_check(p, "scontrol", s->scontrol, keyat);
	command_check(p, "scancel", s->scancel, keyat);
	q = conf_quote(e->name, strlen(e->name));
	if (!b.dir_written)
		conf_err(
		        p, keyat,
		        "executor %s needs \"shared_dir\": a directory this machine and the nodes both see",
		        q);
	free(q);
}

void
conf_slurm_free(void *keys)
{
	struct conf_slurm *s = keys;

	if (s == NULL)
		return;
	free(s->shared_dir);
	free(s->partition);
	free(s->account);
	free(s->qos);
	conf_strv_free(&s->extra_args);
	free(s->sbatch);
	free(s->squeue);
	free(s->scontrol);
	free(s->scancel);
	free(s);
}

const struct conf_slurm *
conf_executor_slurm(const struct conf_executor *e)
{
	return e != NULL && e->type == CONF_EXEC_SLURM ? e->keys : NULL;
}

void
conf_slurm_job_check(struct pctx *p, const struct conf_executor *e, bool keys_ok,
                     const struct jobb *jb, const char *q, struct diag_pos at)
{
	struct diag_pos eat = jb->executor_at.line > 0 ? jb->executor_at : at;
	char *eq;

	(void)keys_ok;
	if (p->c->source.repo != NULL || conf_from_repo())
		return;
	eq = conf_quote(e->name, strlen(e->name));
	conf_err(
	        p, eat,
	        "job %s runs on executor %s (slurm): its code travels as a commit, so the file needs a \"source:\" section (or run the daemon with --from-repo)",
	        q, eq);
	free(eq);
}
