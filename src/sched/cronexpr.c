/* src/sched/cronexpr.c: cron expressions with Vixie/cronie semantics, matched on a zone's wall
 * clock. The next fire is found by skipping whole months, days and hours with bitsets, span
 * by span of constant UTC offset, never minute by minute. */
#include "sched/cronexpr.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sched/tz.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

/* Which fields started with '*' (cronie's flags, decided on the field's first byte). */
#define MIN_STAR 0x1
#define HR_STAR  0x2
#define DOM_STAR 0x4
#define DOW_STAR 0x8
#define EVERY    0x10 /* "@every": minute holds the interval */

/* 24 bytes, each bitset sized to its field: a daemon with 10,000 jobs of distinct schedules
 * holds 10,000 of them (bench/daemon.sh). */
struct cronexpr {
	uint64_t minute; /* bits 0-59; for @every, the interval in seconds */
	uint32_t hour;   /* bits 0-23 */
	uint32_t dom;    /* bits 1-31 */
	uint16_t month;  /* bits 1-12 */
	uint8_t dow;     /* bits 0-6 (7 folded into 0) */
	uint8_t flags;   /* MIN_STAR ... EVERY */
};

enum field { F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

static const char *const month_names[] = { "jan", "feb", "mar", "apr", "may", "jun",
	                                   "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const dow_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

static const struct field_spec {
	const char *name;
	int lo, hi;
	const char *const *names;
	int nnames, name_base;
} specs[F_COUNT] = {
	{ "minute", 0, 59, NULL, 0, 0 },          { "hour", 0, 23, NULL, 0, 0 },
	{ "day-of-month", 1, 31, NULL, 0, 0 },    { "month", 1, 12, month_names, 12, 1 },
	{ "day-of-week", 0, 7, dow_names, 7, 0 },
};

#define NUM_TOO_BIG 1000000000

static bool
is_sep(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Reads a number or a name at *P (stops at END). Returns NULL, or a message the caller frees. */
static char *
parse_value(const struct field_spec *fs, const char **p, const char *end, int *out)
{
	const char *s = *p;

	if (s < end && isdigit((unsigned char)*s)) {
		long v = 0;

		while (s < end && isdigit((unsigned char)*s)) {
			if (v < NUM_TOO_BIG)
				v = v * 10 + (*s - '0');
			s++;
		}
		if (v < fs->lo || v > fs->hi)
			return xasprintf("%.*s is out of range (%d-%d)", (int)(s - *p), *p, fs->lo,
			                 fs->hi);
		*out = (int)v;
		*p = s;
		return NULL;
	}
	if (s < end && isalpha((unsigned char)*s) && fs->names != NULL) {
		while (s < end && isalpha((unsigned char)*s))
			s++;
		for (int i = 0; i < fs->nnames; i++) {
			if (s - *p == 3 && strncasecmp(*p, fs->names[i], 3) == 0) {
				*out = i + fs->name_base;
				*p = s;
				return NULL;
			}
		}
		return xasprintf("unknown name \"%.*s\" (use %s-%s)", (int)(s - *p), *p,
		                 fs->names[0], fs->names[fs->nnames - 1]);
	}
	if (s >= end || *s == ',' || *s == '/')
		return xstrdup(fs->names ? "expected a number or a name" : "expected a number");
	return xasprintf("unexpected \"%.*s\"", (int)(end - s), s);
}

/* Parses one field's text [S, END) into *BITS. Returns NULL or a message the caller frees. */
static char *
parse_field(const struct field_spec *fs, const char *s, const char *end, uint64_t *bits)
{
	*bits = 0;
	for (;;) {
		const char *item = s;
		int a, b, step = 1;
		char *msg;

		if (s >= end || *s == ',')
			return xstrdup("empty list item");
		if (*s == '*') {
			a = fs->lo;
			b = fs->hi;
			s++;
		} else {
			if ((msg = parse_value(fs, &s, end, &a)) != NULL)
				return msg;
			b = a;
			if (s < end && *s == '-') {
				s++;
				if ((msg = parse_value(fs, &s, end, &b)) != NULL)
					return msg;
				/* A day-of-week range that ends in Sunday ends in 7, as in
				 * cronie: "Sat-Sun" is 6-7, "Mon-Sun/2" 1-7/2 */
				if (fs->names == dow_names && b == 0 && a > 0)
					b = 7;
				if (a > b)
					return xasprintf(
					        "range %.*s is reversed (its start is after its end)",
					        (int)(s - item), item);
			} else if (s < end && *s == '/') {
				b = fs->hi; /* "N/step" is "N-max/step", as in cronie */
			}
		}
		if (s < end && *s == '/') {
			long v = 0;
			const char *d = ++s;

			while (s < end && isdigit((unsigned char)*s)) {
				if (v < NUM_TOO_BIG)
					v = v * 10 + (*s - '0');
				s++;
			}
			if (s == d)
				return xstrdup("expected a step after \"/\"");
			if (v == 0)
				return xstrdup("step must be at least 1");
			step = v > fs->hi ? fs->hi + 1 : (int)v;
		}
		if (s < end && *s != ',') {
			const char *e = s;

			while (e < end && *e != ',')
				e++;
			return xasprintf("unexpected \"%.*s\"", (int)(e - s), s);
		}
		for (int i = a; i <= b; i += step)
			*bits |= UINT64_C(1) << i;
		if (s >= end)
			return NULL;
		s++; /* ',' */
	}
}

static struct diag_pos
pos_at(const struct diag_pos *at, size_t off)
{
	struct diag_pos p = { NULL, 0, 0 };

	if (at != NULL) {
		p = *at;
		if (p.col > 0)
			p.col += (int)off;
	}
	return p;
}

static uint64_t
all_bits(int lo, int hi)
{
	uint64_t b = 0;

	for (int i = lo; i <= hi; i++)
		b |= UINT64_C(1) << i;
	return b;
}

static const struct {
	const char *name;
	int minute, hour, dom, month, dow; /* -1 = all */
	unsigned flags;
} macros[] = {
	{ "yearly", 0, 0, 1, 1, -1, DOW_STAR },   { "annually", 0, 0, 1, 1, -1, DOW_STAR },
	{ "monthly", 0, 0, 1, -1, -1, DOW_STAR }, { "weekly", 0, 0, -1, -1, 0, DOM_STAR },
	{ "daily", 0, 0, -1, -1, -1, 0 },         { "midnight", 0, 0, -1, -1, -1, 0 },
	{ "hourly", 0, -1, -1, -1, -1, HR_STAR },
};

static uint64_t
one_or_all(int v, int lo, int hi)
{
	return v < 0 ? all_bits(lo, hi) : UINT64_C(1) << v;
}

static int
parse_macro(const char *text, const char *s, const struct diag_pos *at, struct cronexpr *ce,
            struct diag *d)
{
	const char *w = s + 1, *we = w, *arg, *ae, *rest;
	int64_t secs;
	const char *why;
	char *dur;
	int rc;

	while (*we != '\0' && !is_sep(*we))
		we++;
	for (arg = we; is_sep(*arg); arg++)
		;
	for (ae = arg; *ae != '\0' && !is_sep(*ae); ae++)
		;
	for (rest = ae; is_sep(*rest); rest++)
		;
	if (we - w == 5 && strncasecmp(w, "every", 5) == 0) {
		if (*arg == '\0') {
			diag_error(d, pos_at(at, (size_t)(s - text)),
			           "@every needs a duration, as in \"@every 10m\"");
			return -EINVAL;
		}
		if (*rest != '\0') {
			diag_error(d, pos_at(at, (size_t)(rest - text)),
			           "unexpected \"%s\" after the duration of @every", rest);
			return -EINVAL;
		}
		dur = xstrndup(arg, (size_t)(ae - arg));
		rc = units_parse_duration(dur, &secs, &why);
		if (rc == 0 && secs < 1) {
			rc = -EINVAL;
			why = "the interval must be at least 1s";
		}
		if (rc < 0)
			diag_error(d, pos_at(at, (size_t)(arg - text)),
			           "bad @every duration \"%s\": %s", dur,
			           why != NULL ? why : "not a duration");
		free(dur);
		if (rc < 0)
			return -EINVAL;
		ce->minute = (uint64_t)secs;
		ce->flags = MIN_STAR | HR_STAR | EVERY;
		return 0;
	}
	for (size_t i = 0; i < EPH_ARRAY_LEN(macros); i++) {
		if ((size_t)(we - w) != strlen(macros[i].name) ||
		    strncasecmp(w, macros[i].name, (size_t)(we - w)) != 0)
			continue;
		if (*arg != '\0') {
			diag_error(d, pos_at(at, (size_t)(arg - text)),
			           "unexpected \"%s\" after @%s", arg, macros[i].name);
			return -EINVAL;
		}
		ce->minute = one_or_all(macros[i].minute, 0, 59);
		ce->hour = one_or_all(macros[i].hour, 0, 23);
		ce->dom = one_or_all(macros[i].dom, 1, 31);
		ce->month = one_or_all(macros[i].month, 1, 12);
		ce->dow = one_or_all(macros[i].dow, 0, 6);
		ce->flags = (uint8_t)macros[i].flags;
		return 0;
	}
	if (we - w == 6 && strncasecmp(w, "reboot", 6) == 0)
		diag_error(d, pos_at(at, (size_t)(s - text)), "@reboot is not supported");
	else
		diag_error(
		        d, pos_at(at, (size_t)(s - text)),
		        "unknown macro \"%.*s\" (use @yearly, @annually, @monthly, @weekly, @daily, "
		        "@midnight, @hourly or @every DURATION)",
		        (int)(we - s), s);
	return -EINVAL;
}

/* Can the day-of-month set ever meet the month set (February having 29 days)? */
static bool
dom_fits_months(const struct cronexpr *ce)
{
	static const int maxd[13] = { 0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	for (int m = 1; m <= 12; m++) {
		if ((ce->month >> m & 1) && (ce->dom & all_bits(1, maxd[m])) != 0)
			return true;
	}
	return false;
}

int
cronexpr_parse(const char *text, const struct diag_pos *at, struct cronexpr **out, struct diag *d)
{
	struct cronexpr *ce = xcalloc(1, sizeof(*ce));
	const char *s = text, *fstart[F_COUNT + 1], *fend[F_COUNT];
	uint64_t bits[F_COUNT];
	int nf = 0, bad = 0;

	*out = NULL;
	while (is_sep(*s))
		s++;
	if (*s == '\0') {
		diag_error(d, pos_at(at, 0), "empty schedule");
		goto fail;
	}
	if (*s == '@') {
		if (parse_macro(text, s, at, ce, d) < 0)
			goto fail;
		*out = ce;
		return 0;
	}
	while (*s != '\0') {
		const char *e = s;

		while (*e != '\0' && !is_sep(*e))
			e++;
		if (nf <= F_COUNT) {
			fstart[nf] = s;
			if (nf < F_COUNT)
				fend[nf] = e;
		}
		nf++;
		for (s = e; is_sep(*s); s++)
			;
	}
	if (nf != F_COUNT) {
		diag_error(d, pos_at(at, (size_t)((nf > F_COUNT ? fstart[F_COUNT] : text) - text)),
		           "expected 5 fields (minute hour day-of-month month day-of-week), got %d",
		           nf);
		goto fail;
	}
	for (int f = 0; f < F_COUNT; f++) {
		char *msg = parse_field(&specs[f], fstart[f], fend[f], &bits[f]);

		if (msg != NULL) {
			diag_error(d, pos_at(at, (size_t)(fstart[f] - text)),
			           "bad %s field \"%.*s\": %s", specs[f].name,
			           (int)(fend[f] - fstart[f]), fstart[f], msg);
			free(msg);
			bad++;
		}
	}
	if (bad)
		goto fail;
	ce->minute = bits[F_MIN];
	ce->hour = (uint32_t)bits[F_HOUR];
	ce->dom = (uint32_t)bits[F_DOM];
	ce->month = (uint16_t)bits[F_MON];
	ce->dow = (uint8_t)((bits[F_DOW] | bits[F_DOW] >> 7) & all_bits(0, 6)); /* 7 is 0 */
	ce->flags = (uint8_t)(*fstart[F_MIN] == '*' ? MIN_STAR : 0) |
	            (*fstart[F_HOUR] == '*' ? HR_STAR : 0) |
	            (*fstart[F_DOM] == '*' ? DOM_STAR : 0) | (*fstart[F_DOW] == '*' ? DOW_STAR : 0);
	/* Only when the day of week does not widen the days (it is "*..." and the day of month
	 * is not) can the day of month alone make the expression impossible. */
	if ((ce->flags & DOW_STAR) && !(ce->flags & DOM_STAR) && !dom_fits_months(ce)) {
		diag_error(d, pos_at(at, (size_t)(fstart[F_DOM] - text)),
		           "never fires: day-of-month \"%.*s\" does not occur in month \"%.*s\"",
		           (int)(fend[F_DOM] - fstart[F_DOM]), fstart[F_DOM],
		           (int)(fend[F_MON] - fstart[F_MON]), fstart[F_MON]);
		goto fail;
	}
	*out = ce;
	return 0;
fail:
	free(ce);
	return -EINVAL;
}

/* ---- matching ---- */

/* The Gregorian calendar's cycle, 400 years of 146,097 days (whole weeks), and two days. */
#define CRONEXPR_CYCLE (INT64_C(146097) * 86400 + 2 * 86400)

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Lowest set bit of MASK at or above FROM, or -1. */
static int
next_bit(uint64_t mask, int from)
{
	if (from > 63)
		return -1;
	mask >>= from;
	return mask ? from + __builtin_ctzll(mask) : -1;
}

/* The days (bits 1-DIM) of a month whose 1st is day FIRST (days since the epoch) that the
 * expression matches: the day-of-week bits repeated over the month and shifted to its
 * weekdays, then ANDed or ORed with the day-of-month bits as cron does. */
static uint64_t
month_days(const struct cronexpr *ce, int64_t first, int dim)
{
	uint64_t dow = ce->dow & 0x7f, rep, w;

	rep = dow | dow << 7 | dow << 14 | dow << 21 | dow << 28 | dow << 35; /* bit k: k % 7 */
	w = (rep >> tz_weekday(first)) << 1; /* bit d: day d's weekday */
	w = (ce->flags & (DOM_STAR | DOW_STAR)) ? ce->dom & w : ce->dom | w;
	return w & ((UINT64_C(1) << (dim + 1)) - 2);
}

/* Smallest local time W (seconds on the wall clock, counted as if it were UTC) with FROM <= W
 * <= UNTIL, on a whole minute, that the expression matches. Each step moves to the next
 * month that can match, the next day of it that does, or the next hour: a few steps a
 * month at most. */
static bool
next_local(const struct cronexpr *ce, int64_t from, int64_t until, int64_t *out)
{
	int64_t w = floor_div(from + 59, 60) * 60, days = floor_div(w, 86400);
	int sod = (int)(w - days * 86400), h = sod / 3600, mi = sod % 3600 / 60, y, m, d;

	tz_civil_from_days(days, &y, &m, &d);
	while (days * 86400 <= until) {
		int dim = tz_days_in_month(y, m), nd, nh, nm;

		if (!(ce->month >> m & 1) ||
		    (nd = next_bit(month_days(ce, days - d + 1, dim), d)) < 0) {
			days += dim - d + 1; /* to the 1st of the next month */
			d = 1;
			if (++m > 12) {
				m = 1;
				y++;
			}
			h = mi = 0;
			continue;
		}
		if (nd != d) {
			days += nd - d;
			d = nd;
			h = mi = 0;
		}
		if ((nh = next_bit(ce->hour, h)) < 0) {
			days++; /* to the next day; past the month's last, the loop moves on */
			d++;
			if (d > dim) {
				d = 1;
				if (++m > 12) {
					m = 1;
					y++;
				}
			}
			h = mi = 0;
			continue;
		}
		if (nh != h) {
			h = nh;
			mi = 0;
		}
		if ((nm = next_bit(ce->minute, mi)) < 0) {
			h++;
			mi = 0;
			continue; /* h == 24 finds no hour bit and moves to the next day */
		}
		w = days * 86400 + h * 3600 + nm * 60;
		if (w > until)
			return false;
		*out = w;
		return true;
	}
	return false;
}

int
cronexpr_next(const struct cronexpr *ce, const struct tz *z, int64_t after, int64_t *next)
{
	bool fixed = !(ce->flags & (MIN_STAR | HR_STAR));
	int64_t limit, t, w;
	struct tz_span sp;

	if (after < TZ_T_MIN + 2 * 86400)
		return -ERANGE;
	if (after >= CRONEXPR_T_MAX)
		return -ENOENT;
	if (ce->flags & EVERY) {
		int64_t every = (int64_t)ce->minute;

		w = (floor_div(after, every) + 1) * every;
		if (w > CRONEXPR_T_MAX)
			return -ENOENT;
		*next = w;
		return 0;
	}
	/* Past the zone's last table change its offsets repeat every 400 years, as the calendar
	 * does: a search that long from there finds a fire or proves there is none. It takes a
	 * dozen steps a year (next_local) and two spans at most. */
	limit = tz_periodic_from(z) > after ? tz_periodic_from(z) : after;
	limit = limit > CRONEXPR_T_MAX - CRONEXPR_CYCLE ? CRONEXPR_T_MAX : limit + CRONEXPR_CYCLE;
	t = after + 1;
	tz_span_at(z, t, &sp);
	for (;;) {
		int64_t hi = sp.end == INT64_MAX || sp.end - 1 > limit ? limit : sp.end - 1;
		int64_t from = t + sp.off, until = hi + sp.off;

		if (until > CRONEXPR_T_MAX) /* nor past 9999 on the wall clock */
			until = CRONEXPR_T_MAX;
		/* A fixed-time job whose times the gap before this span swallowed fires once, at
		 * the first instant after the gap. */
		if (fixed && sp.start == t && sp.prev_off < sp.off &&
		    next_local(ce, t + sp.prev_off, t + sp.off - 1, &w)) {
			*next = t;
			return 0;
		}
		/* A fixed-time job fired at the first pass of a repeated hour: skip the second. */
		if (fixed && sp.start != INT64_MIN && sp.prev_off > sp.off &&
		    from < sp.start + sp.prev_off)
			from = sp.start + sp.prev_off;
		if (from <= until && next_local(ce, from, until, &w)) {
			*next = w - sp.off;
			return 0;
		}
		if (sp.end == INT64_MAX || sp.end > limit)
			return -ENOENT;
		t = sp.end;
		tz_span_at(z, t, &sp);
	}
}

int64_t
cronexpr_interval(const struct cronexpr *ce)
{
	return (ce->flags & EVERY) ? (int64_t)ce->minute : 0;
}

size_t
cronexpr_size(void)
{
	return sizeof(struct cronexpr);
}

struct cronexpr *
cronexpr_copy_into(const struct cronexpr *ce, void *mem)
{
	return memcpy(mem, ce, sizeof(*ce));
}

bool
cronexpr_is_wallclock(const struct cronexpr *ce)
{
	return (ce->flags & (MIN_STAR | HR_STAR)) != 0;
}

void
cronexpr_free(struct cronexpr *ce)
{
	free(ce);
}
