/* placeholder: being written */
#include "sched/cronexpr.h"

#include <errno.h>
#include <stddef.h>

int
cronexpr_parse(const char *text, const struct diag_pos *at, struct cronexpr **out, struct diag *d)
{
	(void)text;
	(void)at;
	(void)d;
	*out = NULL;
	return -ENOSYS;
}

int
cronexpr_next(const struct cronexpr *ce, const struct tz *z, int64_t after, int64_t *next)
{
	(void)ce;
	(void)z;
	(void)after;
	(void)next;
	return -ENOSYS;
}

int64_t
cronexpr_interval(const struct cronexpr *ce)
{
	(void)ce;
	return 0;
}

void
cronexpr_free(struct cronexpr *ce)
{
	(void)ce;
}
