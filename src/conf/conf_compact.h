/* src/conf/conf_compact.h: internal to the conf component: compaction of a loaded
 * configuration (conf_compact.c). */
#ifndef EPH_CONF_CONF_COMPACT_H
#define EPH_CONF_CONF_COMPACT_H

struct conf;
struct conf_pool;

/* Moves the jobs' strings, string vectors and compiled schedules of C into C's pool
 * (c->pool), one copy of each distinct value (one expression for each distinct schedule
 * text). The jobs' fields are then borrowed from C: conf_free frees the pool, not the jobs'
 * members, and c->crons stays empty. */
void conf_compact(struct conf *c);
/* Frees a pool and its blocks; NULL is fine. */
void conf_pool_free(struct conf_pool *b);

#endif
