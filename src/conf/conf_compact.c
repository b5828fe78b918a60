/* src/conf/conf_compact.c: compaction of a valid configuration: one copy of each string,
 * vector and schedule.
 *
 * Once a file is valid, the jobs' strings move into a pool the configuration owns, each
 * distinct string (and each distinct vector of them, and each distinct schedule's compiled
 * expression) once: 10,000 jobs that share an executor, an interpreter, a command or a
 * schedule hold one copy, not 10,000 small allocations (bench/daemon.sh). */
#include "conf/conf_compact.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "sched/cronexpr.h"
#include "util/xalloc.h"

#define CONF_POOL_BLOCK 65536 /* bytes of a pool block; a longer item gets its own */

struct conf_pool {
	struct conf_pool *next;
	size_t used, cap;
	max_align_t data[]; /* cap bytes */
};

/* LEN bytes of pool memory, aligned for a pointer; a new block has at least BLOCK bytes. */
static void *
pool_alloc(struct conf_pool **pool, size_t block, size_t len)
{
	struct conf_pool *b = *pool;
	size_t off;

	len = (len + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
	if (b == NULL || b->cap - b->used < len) {
		size_t cap = len > block ? len : block;

		b = xmalloc(sizeof(*b) + cap);
		b->next = *pool;
		b->used = 0;
		b->cap = cap;
		*pool = b;
	}
	off = b->used;
	b->used += len;
	return (char *)b->data + off;
}

void
conf_pool_free(struct conf_pool *b)
{
	while (b != NULL) {
		struct conf_pool *next = b->next;

		free(b);
		b = next;
	}
}

/* An open-addressing table of byte strings (strings, pointer vectors) to their one copy. */
struct ient {
	const void *key; /* NULL = empty slot */
	size_t len;
	void *val;
};

struct itab {
	struct ient *e;
	size_t mask;
};

static void
itab_init(struct itab *t, size_t max)
{
	size_t cap = 16;

	while (cap < 2 * max)
		cap *= 2;
	t->e = xcalloc(cap, sizeof(*t->e));
	t->mask = cap - 1;
}

/* The entry for KEY (LEN bytes): its value, or an empty slot to fill (key NULL). */
static struct ient *
itab_slot(struct itab *t, const void *key, size_t len)
{
	const unsigned char *s = key;
	uint64_t h = 1469598103934665603u; /* FNV-1a */
	size_t i;

	for (size_t k = 0; k < len; k++)
		h = (h ^ s[k]) * 1099511628211u;
	for (i = (size_t)h & t->mask;; i = (i + 1) & t->mask)
		if (t->e[i].key == NULL ||
		    (t->e[i].len == len && memcmp(t->e[i].key, key, len) == 0))
			return &t->e[i];
}

struct compact {
	struct conf_pool **pool;
	size_t block; /* bytes of a new block */
	struct itab strs, vecs, crons;
};

/* The pool's copy of S, which is freed. */
static char *
intern_str(struct compact *k, char *s)
{
	struct ient *e;
	size_t len;

	if (s == NULL)
		return NULL;
	len = strlen(s) + 1;
	e = itab_slot(&k->strs, s, len);
	if (e->key == NULL) {
		e->val = memcpy(pool_alloc(k->pool, k->block, len), s, len);
		e->key = e->val;
		e->len = len;
	}
	free(s);
	return e->val;
}

/* SV's strings and vector, moved into the pool. */
static void
intern_strv(struct compact *k, struct conf_strv *sv)
{
	struct ient *e;
	size_t len;

	if (sv->n == 0)
		return;
	for (size_t i = 0; i < sv->n; i++)
		sv->v[i] = intern_str(k, sv->v[i]);
	len = (sv->n + 1) * sizeof(*sv->v);
	e = itab_slot(&k->vecs, sv->v, len);
	if (e->key == NULL) {
		e->val = memcpy(pool_alloc(k->pool, k->block, len), sv->v, len);
		e->key = e->val;
		e->len = len;
	}
	free(sv->v);
	sv->v = e->val;
}

/* Moves the jobs' strings and schedules' expressions into C's pool, each distinct one once:
 * the jobs with the same schedule text share one expression. */
void
conf_compact(struct conf *c)
{
	struct compact k = { .pool = &c->pool };
	size_t nstr = 0, bytes = 0;

	for (size_t i = 0; i < c->njobs; i++) {
		const struct conf_job *j = &c->jobs[i];
		size_t nv =
		        j->command.n + j->env.n + j->notify.email.n + j->secrets.n + j->results.n;

		nstr += 8 + nv;
		bytes += (8 + nv) * 2 * sizeof(void *) + strlen(j->name); /* a guess */
	}
	/* small files get a small block: the guess, which interning mostly beats */
	k.block = bytes < CONF_POOL_BLOCK ? bytes : CONF_POOL_BLOCK;
	itab_init(&k.strs, nstr);
	itab_init(&k.vecs, 4 * c->njobs);
	itab_init(&k.crons, c->njobs);
	/* the pool owns the expressions: c->crons, for a conf not compacted, stays empty */
	for (size_t i = 0; i < c->njobs; i++) {
		struct conf_job *j = &c->jobs[i];
		struct ient *e;

		j->name = intern_str(&k, j->name);
		j->schedule = intern_str(&k, j->schedule);
		j->timezone = intern_str(&k, j->timezone);
		j->run = intern_str(&k, j->run);
		/* j->executor is borrowed from c->executors */
		j->workdir = intern_str(&k, j->workdir);
		j->requirements = intern_str(&k, j->requirements);
		j->interpreter = intern_str(&k, j->interpreter);
		intern_strv(&k, &j->command);
		intern_strv(&k, &j->env);
		intern_strv(&k, &j->notify.email);
		intern_strv(&k, &j->secrets);
		intern_strv(&k, &j->results);
		/* the same text compiles to the same expression; interned, the same pointer.
		 * Each distinct one moves into the pool too: left where parsing allocated it,
		 * among what the parser then freed, 10,000 of them kept 2 MiB of pages
		 * resident */
		e = itab_slot(&k.crons, &j->schedule, sizeof(j->schedule));
		if (e->key == NULL) {
			e->key = &j->schedule;
			e->len = sizeof(j->schedule);
			e->val = cronexpr_copy_into(j->cron,
			                            pool_alloc(k.pool, k.block, cronexpr_size()));
		}
		cronexpr_free(j->cron);
		j->cron = e->val;
	}
	free(k.strs.e);
	free(k.vecs.e);
	free(k.crons.e);
	if (c->njobs > 0)
		c->jobs = xreallocarray(c->jobs, c->njobs, sizeof(*c->jobs));
}
