/* src/sched/tz.c: TZif reader (RFC 8536: v1, v2+ 64-bit data, the POSIX TZ footer for the
 * instants after the last transition) and per-zone conversions. Never touches TZ, tzset(),
 * localtime() or mktime(). */
#include "sched/tz.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xalloc.h"

#define TZ_FILE_MAX     (1u << 20) /* the largest real TZif file is a few KiB */
#define TZ_NAME_MAX     255
#define TZ_OFF_LIMIT    (26 * 3600) /* real offsets are within +-15h; be generous */
#define TZ_RULE_T_LIMIT (167 * 3600)

/* One day of a POSIX TZ rule: Jn (1-365, no Feb 29), n (0-365) or Mm.w.d. */
struct tz_rule_date {
	char kind; /* 'J', 'D' (zero-based day) or 'M' */
	int a, b, c;
	int time; /* seconds after local midnight, may be negative or above 24h */
};

struct tz_rule {
	int std_off, dst_off; /* seconds east */
	bool has_dst;
	struct tz_rule_date start, end;
};

/* A change of the UTC offset at instant AT. */
struct tz_trans {
	int64_t at;
	int before, after;
};

struct tz {
	char *name;
	int off0; /* before the first transition */
	/* Transitions of the file's table that change the offset. */
	struct tz_trans *tab;
	size_t ntab;
	bool has_table;   /* the file had transitions */
	int64_t raw_last; /* the last of them (the footer rules after it) */
	bool has_rule;    /* a non-empty footer */
	struct tz_rule rule;
};

/* ---- calendar ---- */

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t
tz_days_from_civil(int64_t y, int m, int d)
{
	/* Howard Hinnant's days_from_civil. */
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void
tz_civil_from_days(int64_t days, int *y, int *m, int *d)
{
	int64_t z = days + 719468, era, doe, yoe, doy, mp, yy;

	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	yy = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yy + (*m <= 2));
}

static bool
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
tz_days_in_month(int y, int m)
{
	static const int dim[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && is_leap(y))
		return 29;
	return dim[m - 1];
}

int
tz_weekday(int64_t days)
{
	/* 1970-01-01 was a Thursday. */
	return (int)(((days % 7) + 11) % 7);
}

static int64_t
clamp_t(int64_t t)
{
	return t < TZ_T_MIN ? TZ_T_MIN : t > TZ_T_MAX ? TZ_T_MAX : t;
}

static int
year_of(int64_t t)
{
	int y, m, d;

	tz_civil_from_days(floor_div(t, 86400), &y, &m, &d);
	return y;
}

/* ---- POSIX TZ rules (the footer) ---- */

static int64_t
rule_day(const struct tz_rule_date *r, int y)
{
	int64_t start, first;

	switch (r->kind) {
	case 'J':
		return tz_days_from_civil(y, 1, 1) + r->a - 1 + (is_leap(y) && r->a >= 60);
	case 'D':
		return tz_days_from_civil(y, 1, 1) + r->a;
	default: /* 'M': month a, week b (5 = last), weekday c */
		start = tz_days_from_civil(y, r->a, 1);
		first = start + (r->c - tz_weekday(start) + 7) % 7 + (r->b - 1) * 7;
		while (first >= start + tz_days_in_month(y, r->a))
			first -= 7;
		return first;
	}
}

/* The offset changes the rule makes in years Y-2..Y+2, in order, at most 10. */
/* One switch of a rule: into DST (the start date) or out of it (the end date). */
struct tz_event {
	int64_t at;
	bool to_dst;
};

static size_t
rule_changes(const struct tz_rule *r, int y, struct tz_trans *out)
{
	struct tz_event ev[10] = { { 0, false } }, tmp;
	size_t n = 0, nout = 0;
	bool dst;

	for (int yy = y - 2; yy <= y + 2; yy++) {
		int64_t s = rule_day(&r->start, yy) * 86400 + r->start.time - r->std_off;
		int64_t e = rule_day(&r->end, yy) * 86400 + r->end.time - r->dst_off;

		ev[n].at = s;
		ev[n++].to_dst = true;
		ev[n].at = e;
		ev[n++].to_dst = false;
	}
	/* Stable insertion sort by instant. */
	for (size_t i = 1; i < n; i++) {
		for (size_t j = i; j > 0 && ev[j - 1].at > ev[j].at; j--) {
			tmp = ev[j];
			ev[j] = ev[j - 1];
			ev[j - 1] = tmp;
		}
	}
	dst = !ev[0].to_dst; /* the state before the first event is the one it leaves */
	for (size_t i = 0; i < n;) {
		bool before = dst;
		int64_t at = ev[i].at;

		while (i < n && ev[i].at == at)
			dst = ev[i++].to_dst;
		if (before != dst) {
			out[nout].at = at;
			out[nout].before = before ? r->dst_off : r->std_off;
			out[nout].after = dst ? r->dst_off : r->std_off;
			nout++;
		}
	}
	return nout;
}

/* ---- lookups ---- */

/* Largest change at or before T. */
static bool
last_change(const struct tz *z, int64_t t, struct tz_trans *out)
{
	size_t lo = 0, hi;

	if (z->has_rule && z->rule.has_dst && (!z->has_table || t > z->raw_last)) {
		struct tz_trans ch[10];
		size_t n = rule_changes(&z->rule, year_of(t), ch);

		for (size_t i = n; i-- > 0;) {
			if (ch[i].at <= t && (!z->has_table || ch[i].at > z->raw_last)) {
				*out = ch[i];
				return true;
			}
		}
	}
	hi = z->ntab;
	while (lo < hi) { /* first index with at > t */
		size_t mid = lo + (hi - lo) / 2;

		if (z->tab[mid].at <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	*out = z->tab[lo - 1];
	return true;
}

/* Smallest change after T. */
static bool
next_change(const struct tz *z, int64_t t, struct tz_trans *out)
{
	if (z->ntab > 0 && t < z->tab[z->ntab - 1].at) {
		size_t lo = 0, hi = z->ntab;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (z->tab[mid].at <= t)
				lo = mid + 1;
			else
				hi = mid;
		}
		*out = z->tab[lo];
		return true;
	}
	if (z->has_rule && z->rule.has_dst) {
		int64_t u = z->has_table && z->raw_last > t ? z->raw_last : t;
		int y = year_of(u);

		for (int tries = 0; tries < 4; tries++, y += 4) {
			struct tz_trans ch[10];
			size_t n = rule_changes(&z->rule, y, ch);

			for (size_t i = 0; i < n; i++) {
				if (ch[i].at > u) {
					*out = ch[i];
					return true;
				}
			}
		}
	}
	return false;
}

static int
offset_at(const struct tz *z, int64_t t)
{
	struct tz_trans tr;

	if (z->has_rule && !z->rule.has_dst && (!z->has_table || t > z->raw_last))
		return z->rule.std_off;
	if (last_change(z, t, &tr))
		return tr.after;
	if (z->has_rule && z->rule.has_dst && !z->has_table)
		return z->rule.std_off; /* unreachable: a DST rule changes every year */
	return z->off0;
}

static const struct tz tz_utc_static = { .name = (char *)"UTC" };

static const struct tz *
zone(const struct tz *z)
{
	return z != NULL ? z : &tz_utc_static;
}

int
tz_offset_at(const struct tz *z, int64_t t)
{
	return offset_at(zone(z), clamp_t(t));
}

int64_t
tz_periodic_from(const struct tz *z)
{
	z = zone(z);
	return z->has_table ? clamp_t(z->raw_last) : TZ_T_MIN;
}

/* tz_span_at past the table, where the rule alone holds: one rule_changes for both ends
 * (cronexpr_next walks 800 spans to prove an expression never fires). False when the
 * changes around T do not give both. */
static bool
rule_span_at(const struct tz *z, int64_t t, struct tz_span *out)
{
	struct tz_trans ch[10];
	size_t n = rule_changes(&z->rule, year_of(t), ch), i = 0;

	while (i < n && ch[i].at <= t)
		i++;
	if (i == 0 || i == n || (z->has_table && ch[i - 1].at <= z->raw_last))
		return false;
	out->off = ch[i - 1].after;
	out->start = ch[i - 1].at;
	out->prev_off = ch[i - 1].before;
	out->end = ch[i].at <= TZ_T_MAX ? ch[i].at : INT64_MAX;
	return true;
}

void
tz_span_at(const struct tz *z, int64_t t, struct tz_span *out)
{
	struct tz_trans tr;

	z = zone(z);
	t = clamp_t(t);
	if (z->has_rule && z->rule.has_dst && (!z->has_table || t > z->raw_last) &&
	    rule_span_at(z, t, out))
		return;
	out->off = offset_at(z, t);
	if (last_change(z, t, &tr)) {
		out->start = tr.at;
		out->prev_off = tr.before;
	} else {
		out->start = INT64_MIN;
		out->prev_off = out->off;
	}
	out->end = next_change(z, t, &tr) && tr.at <= TZ_T_MAX ? tr.at : INT64_MAX;
}

void
tz_to_local(const struct tz *z, int64_t t, struct tz_tm *out)
{
	int64_t l, days, sod;

	t = clamp_t(t);
	out->utoff = tz_offset_at(z, t);
	l = t + out->utoff;
	days = floor_div(l, 86400);
	sod = l - days * 86400;
	tz_civil_from_days(days, &out->year, &out->mon, &out->mday);
	out->hour = (int)(sod / 3600);
	out->min = (int)(sod % 3600 / 60);
	out->sec = (int)(sod % 60);
	out->wday = tz_weekday(days);
}

int
tz_from_local(const struct tz *z, const struct tz_tm *lt, int64_t *first, int64_t *second)
{
	int64_t y = lt->year, m0 = lt->mon - 1, w, t, sol[2];
	struct tz_span sp;
	int nsol = 0;

	y += floor_div(m0, 12);
	m0 -= floor_div(m0, 12) * 12;
	w = tz_days_from_civil(y, (int)m0 + 1, 1) + lt->mday - 1;
	w = w * 86400 + (int64_t)lt->hour * 3600 + (int64_t)lt->min * 60 + lt->sec;
	w = clamp_t(w);
	/* Any solution t = w - off lies within a day and some of w: walk the spans there. */
	t = w - TZ_OFF_LIMIT - 3600;
	for (;;) {
		tz_span_at(z, t, &sp);
		if ((sp.start == INT64_MIN || w - sp.off >= sp.start) &&
		    (sp.end == INT64_MAX || w - sp.off < sp.end) && nsol < 2)
			sol[nsol++] = w - sp.off;
		if (sp.end == INT64_MAX || sp.end > w + TZ_OFF_LIMIT + 3600)
			break;
		/* A gap: w is skipped when it lies between the two clocks of this change. */
		t = sp.end;
		if (nsol == 0) {
			struct tz_span nx;

			tz_span_at(z, t, &nx);
			if (nx.prev_off < nx.off && w >= t + nx.prev_off && w < t + nx.off) {
				if (first)
					*first = t;
				if (second)
					*second = t;
				return TZ_LOCAL_GAP;
			}
		}
	}
	if (nsol == 0) { /* not reachable with consistent data; answer something sane */
		sol[nsol++] = w - tz_offset_at(z, w);
	}
	if (first)
		*first = sol[0];
	if (second)
		*second = sol[nsol - 1];
	return nsol == 2 ? TZ_LOCAL_TWICE : TZ_LOCAL_ONCE;
}

/* ---- ISO 8601 ---- */

void
tz_format_iso8601(const struct tz *z, int64_t t, char *out, size_t n)
{
	int64_t l, days, sod;
	int off, a, y, mo, d;
	char sign;

	if (n == 0)
		return;
	t = clamp_t(t);
	off = tz_offset_at(z, t);
	/* ISO 8601 offsets have no seconds: local mean time's (Berlin's +00:53:28 before 1893)
	 * is rounded to the nearest minute, half away from zero, and the wall clock shown
	 * with it, so that the text still names instant T to the second. */
	a = off < 0 ? -off : off;
	a = (a + 30) / 60 * 60;
	off = off < 0 ? -a : a;
	sign = off < 0 ? '-' : '+';
	l = t + off;
	days = floor_div(l, 86400);
	sod = l - days * 86400;
	tz_civil_from_days(days, &y, &mo, &d);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", y, mo, d, (int)(sod / 3600),
	         (int)(sod % 3600 / 60), (int)(sod % 60), sign, a / 3600, a % 3600 / 60);
}

/* Exactly N digits at *P. */
static bool
iso_digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		*v = *v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return true;
}

int
tz_parse_iso8601(const char *s, const struct tz *z, int64_t *out)
{
	struct tz_tm lt = { 0 };
	const char *p = s;
	int oh, om = 0, off = 0;
	bool has_off = false;

	if (!iso_digits(&p, 4, &lt.year) || *p++ != '-' || !iso_digits(&p, 2, &lt.mon) ||
	    *p++ != '-' || !iso_digits(&p, 2, &lt.mday))
		return -EINVAL;
	if (lt.mon < 1 || lt.mon > 12 || lt.mday < 1 || lt.mday > tz_days_in_month(lt.year, lt.mon))
		return -EINVAL;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!iso_digits(&p, 2, &lt.hour) || *p++ != ':' || !iso_digits(&p, 2, &lt.min))
			return -EINVAL;
		if (*p == ':') {
			p++;
			if (!iso_digits(&p, 2, &lt.sec))
				return -EINVAL;
			if (*p == '.' || *p == ',') {
				p++;
				if (!isdigit((unsigned char)*p))
					return -EINVAL;
				while (isdigit((unsigned char)*p))
					p++;
			}
		}
		if (lt.hour > 23 || lt.min > 59 || lt.sec > 59)
			return -EINVAL;
		if (*p == 'Z' || *p == 'z') {
			p++;
			has_off = true;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1;

			if (!iso_digits(&p, 2, &oh))
				return -EINVAL;
			if (*p == ':')
				p++;
			if (isdigit((unsigned char)*p) && !iso_digits(&p, 2, &om))
				return -EINVAL;
			if (oh > 23 || om > 59)
				return -EINVAL;
			off = sign * (oh * 3600 + om * 60);
			has_off = true;
		}
	}
	if (*p != '\0')
		return -EINVAL;
	if (has_off) {
		*out = (tz_days_from_civil(lt.year, lt.mon, lt.mday) * 86400 + lt.hour * 3600 +
		        lt.min * 60 + lt.sec) -
		       off;
		return 0;
	}
	(void)tz_from_local(z, &lt, out, NULL);
	return 0;
}

/* ---- loading ---- */

static bool
name_ok(const char *name)
{
	size_t len = strlen(name), comp = 0;
	const char *c = name;

	if (len == 0 || len > TZ_NAME_MAX || name[0] == '/')
		return false;
	for (const char *p = name;; p++) {
		if (*p == '/' || *p == '\0') {
			comp = (size_t)(p - c);
			if (comp == 0 || (comp == 1 && c[0] == '.') ||
			    (comp == 2 && c[0] == '.' && c[1] == '.'))
				return false;
			if (*p == '\0')
				return true;
			c = p + 1;
		} else if (!isalnum((unsigned char)*p) && !strchr("-_+.", *p)) {
			return false;
		}
	}
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* POSIX TZ pieces. Each returns false on junk. */
static bool
posix_name(const char **p)
{
	const char *s = *p;

	if (*s == '<') {
		s++;
		while (isalnum((unsigned char)*s) || *s == '+' || *s == '-')
			s++;
		if (*s != '>' || s - *p < 4)
			return false;
		*p = s + 1;
		return true;
	}
	while (isalpha((unsigned char)*s))
		s++;
	if (s - *p < 3)
		return false;
	*p = s;
	return true;
}

/* [+-]h[h][:mm[:ss]] up to MAXH hours. */
static bool
posix_time(const char **p, int maxh, int *out)
{
	const char *s = *p;
	int sign = 1, h = 0, m = 0, sec = 0, nd = 0;

	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	while (isdigit((unsigned char)*s) && nd < 3) {
		h = h * 10 + (*s++ - '0');
		nd++;
	}
	if (nd == 0 || h > maxh)
		return false;
	if (*s == ':') {
		s++;
		if (!iso_digits(&s, 2, &m) || m > 59)
			return false;
		if (*s == ':') {
			s++;
			if (!iso_digits(&s, 2, &sec) || sec > 59)
				return false;
		}
	}
	*out = sign * (h * 3600 + m * 60 + sec);
	*p = s;
	return true;
}

static bool
posix_num(const char **p, int lo, int hi, int *out)
{
	int v = 0, nd = 0;

	while (isdigit((unsigned char)**p) && nd < 4) {
		v = v * 10 + (*(*p)++ - '0');
		nd++;
	}
	*out = v;
	return nd > 0 && v >= lo && v <= hi;
}

static bool
posix_date(const char **p, struct tz_rule_date *r)
{
	r->time = 2 * 3600;
	if (**p == 'J') {
		(*p)++;
		r->kind = 'J';
		if (!posix_num(p, 1, 365, &r->a))
			return false;
	} else if (**p == 'M') {
		(*p)++;
		r->kind = 'M';
		if (!posix_num(p, 1, 12, &r->a) || *(*p)++ != '.' || !posix_num(p, 1, 5, &r->b) ||
		    *(*p)++ != '.' || !posix_num(p, 0, 6, &r->c))
			return false;
	} else {
		r->kind = 'D';
		if (!posix_num(p, 0, 365, &r->a))
			return false;
	}
	if (**p == '/') {
		(*p)++;
		if (!posix_time(p, 167, &r->time))
			return false;
	}
	return true;
}

static bool
posix_parse(const char *s, struct tz_rule *r)
{
	int off;

	memset(r, 0, sizeof(*r));
	if (!posix_name(&s) || !posix_time(&s, 24, &off))
		return false;
	r->std_off = -off;
	if (*s == '\0')
		return true;
	if (!posix_name(&s))
		return false;
	r->has_dst = true;
	r->dst_off = r->std_off + 3600;
	if (*s != ',' && *s != '\0') {
		if (!posix_time(&s, 24, &off))
			return false;
		r->dst_off = -off;
	}
	if (*s == '\0') { /* no rule: POSIX leaves it to the implementation; take the US one */
		r->start = (struct tz_rule_date){ 'M', 3, 2, 0, 7200 };
		r->end = (struct tz_rule_date){ 'M', 11, 1, 0, 7200 };
		return true;
	}
	if (*s++ != ',' || !posix_date(&s, &r->start) || *s++ != ',' || !posix_date(&s, &r->end))
		return false;
	return *s == '\0';
}

/* Parses TZif bytes into Z (name not set). */
static int
tzif_parse(const unsigned char *d, size_t len, struct tz *z)
{
	size_t pos = 0, timecnt, typecnt, charcnt, leapcnt, isstdcnt, isutcnt, tsize = 4, need;
	const unsigned char *times, *idx, *types;
	int version;
	int *offs = NULL;
	int rc = -EINVAL;

	for (int pass = 0; pass < 2; pass++) {
		if (len - pos < 44 || memcmp(d + pos, "TZif", 4) != 0)
			return -EINVAL;
		version = d[pos + 4];
		if (version != 0 && (version < '2' || version > '9'))
			return -EINVAL;
		isutcnt = be32(d + pos + 20);
		isstdcnt = be32(d + pos + 24);
		leapcnt = be32(d + pos + 28);
		timecnt = be32(d + pos + 32);
		typecnt = be32(d + pos + 36);
		charcnt = be32(d + pos + 40);
		pos += 44;
		if (typecnt == 0 || typecnt > 256 || charcnt == 0 ||
		    (isutcnt != 0 && isutcnt != typecnt) ||
		    (isstdcnt != 0 && isstdcnt != typecnt) || timecnt > TZ_FILE_MAX ||
		    leapcnt > TZ_FILE_MAX || charcnt > TZ_FILE_MAX)
			return -EINVAL;
		need = timecnt * tsize + timecnt + typecnt * 6 + charcnt + leapcnt * (tsize + 4) +
		       isstdcnt + isutcnt;
		if (len - pos < need)
			return -EINVAL;
		if (pass == 0 && version != 0) { /* skip the v1 block; read the 64-bit one */
			pos += need;
			tsize = 8;
			continue;
		}
		break;
	}
	times = d + pos;
	idx = times + timecnt * tsize;
	types = idx + timecnt;
	offs = xcalloc(typecnt, sizeof(*offs));
	for (size_t i = 0; i < typecnt; i++) {
		const unsigned char *tt = types + i * 6;

		offs[i] = (int32_t)be32(tt);
		if (offs[i] < -TZ_OFF_LIMIT || offs[i] > TZ_OFF_LIMIT || tt[4] > 1 ||
		    tt[5] >= charcnt)
			goto out;
	}
	z->off0 = offs[0];
	z->tab = xcalloc(timecnt ? timecnt : 1, sizeof(*z->tab));
	{
		int prev = offs[0];
		int64_t last = INT64_MIN;

		for (size_t i = 0; i < timecnt; i++) {
			int64_t at =
			        tsize == 8 ? be64(times + i * 8) : (int32_t)be32(times + i * 4);

			if (idx[i] >= typecnt || at <= last)
				goto out;
			last = at;
			if (offs[idx[i]] != prev) {
				z->tab[z->ntab].at = at;
				z->tab[z->ntab].before = prev;
				z->tab[z->ntab].after = offs[idx[i]];
				z->ntab++;
				prev = offs[idx[i]];
			}
		}
		z->has_table = timecnt > 0;
		z->raw_last = last;
	}
	pos += need;
	if (version != 0) {
		const unsigned char *nl;
		char *footer;
		bool ok;

		if (pos >= len || d[pos] != '\n')
			goto out;
		pos++;
		nl = memchr(d + pos, '\n', len - pos);
		if (nl == NULL)
			goto out;
		if (nl > d + pos) {
			footer = xstrndup((const char *)d + pos, (size_t)(nl - (d + pos)));
			ok = posix_parse(footer, &z->rule);
			free(footer);
			if (!ok)
				goto out;
			z->has_rule = true;
		}
	}
	rc = 0;
out:
	free(offs);
	return rc;
}

/* Reads PATH (at most TZ_FILE_MAX bytes) and parses it as zone NAME. */
static int
load_path(const char *path, const char *name, struct tz **out)
{
	unsigned char *data = NULL;
	size_t len = 0;
	struct stat st;
	struct tz *z = NULL;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errno == ENOTDIR || errno == ELOOP ? -ENOENT : -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = -ENOENT;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)TZ_FILE_MAX) {
		rc = -EINVAL;
		goto out;
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, data + len, (size_t)st.st_size - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	z = xcalloc(1, sizeof(*z));
	rc = tzif_parse(data, len, z);
	if (rc < 0)
		goto out;
	z->name = xstrdup(name);
	*out = z;
	z = NULL;
out:
	tz_free(z);
	free(data);
	close(fd);
	return rc;
}

struct tz *
tz_utc(void)
{
	struct tz *z = xcalloc(1, sizeof(*z));

	z->name = xstrdup("UTC");
	return z;
}

static const char *
tzdir(void)
{
	const char *d = getenv("TZDIR");

	return d != NULL && d[0] != '\0' ? d : "/usr/share/zoneinfo";
}

int
tz_load(const char *name, struct tz **out)
{
	char *path;
	int rc;

	*out = NULL;
	if (!name_ok(name))
		return -EINVAL;
	path = xasprintf("%s/%s", tzdir(), name);
	rc = load_path(path, name, out);
	free(path);
	if (rc == -ENOENT && (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)) {
		*out = tz_utc();
		free((*out)->name);
		(*out)->name = xstrdup(name);
		rc = 0;
	}
	return rc;
}

int
tz_load_local(struct tz **out)
{
	const char *env = getenv("TZ");
	char link[4096];
	ssize_t n;

	*out = NULL;
	if (env != NULL && env[0] != '\0') {
		const char *s = env + (env[0] == ':');
		const char *dir = tzdir();
		size_t dl = strlen(dir);

		if (strncmp(s, dir, dl) == 0 && s[dl] == '/')
			s += dl + 1;
		if (name_ok(s) && tz_load(s, out) == 0)
			return 0;
	}
	n = readlink("/etc/localtime", link, sizeof(link) - 1);
	if (n > 0) {
		const char *zi;

		link[n] = '\0';
		zi = strstr(link, "zoneinfo/");
		if (zi != NULL && name_ok(zi + 9) && load_path("/etc/localtime", zi + 9, out) == 0)
			return 0;
	}
	if (load_path("/etc/localtime", "localtime", out) == 0)
		return 0;
	*out = tz_utc();
	return 0;
}

const char *
tz_name(const struct tz *z)
{
	return zone(z)->name;
}

void
tz_free(struct tz *z)
{
	if (z == NULL)
		return;
	free(z->name);
	free(z->tab);
	free(z);
}
