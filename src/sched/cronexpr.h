/* src/sched/cronexpr.h: cron expressions (5 fields, @macros, @every); no I/O, no global TZ. */
#ifndef EPH_SCHED_CRONEXPR_H
#define EPH_SCHED_CRONEXPR_H
#include <stdint.h>

#include "util/attr.h" /* EPH_MUST_CHECK */

struct cronexpr; /* opaque */
struct diag;
struct diag_pos;
struct tz;

/* Parses TEXT, whose first byte is at AT (file, line, column of the jobs file; AT.col is the
 * column of TEXT's first byte, so a quoted scalar passes its column + 1). On success returns
 * 0 and *out owns a new expression (cronexpr_free). Otherwise returns -EINVAL, leaves *out
 * NULL and adds every problem to D, each at the column of the offending field. An expression
 * that can never fire ("0 0 30 2 *") is an error. */
EPH_MUST_CHECK int cronexpr_parse(const char *text, const struct diag_pos *at,
                                  struct cronexpr **out, struct diag *d);
/* First fire strictly after AFTER (UTC seconds) in zone Z; -ENOENT if none within 5 years. */
EPH_MUST_CHECK int cronexpr_next(const struct cronexpr *ce, const struct tz *z, int64_t after,
                                 int64_t *next);
/* For "@every D": the interval in seconds; 0 for calendar expressions. */
int64_t cronexpr_interval(const struct cronexpr *ce);
void cronexpr_free(struct cronexpr *ce); /* NULL is fine */

#endif
