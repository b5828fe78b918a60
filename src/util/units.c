/* src/util/units.c: sizes and durations. */
#include "util/units.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	uint64_t mult;
} size_suffixes[] = {
	{ "", 1 },
	{ "b", 1 },
	{ "k", UINT64_C(1) << 10 },
	{ "kb", UINT64_C(1) << 10 },
	{ "kib", UINT64_C(1) << 10 },
	{ "m", UINT64_C(1) << 20 },
	{ "mb", UINT64_C(1) << 20 },
	{ "mib", UINT64_C(1) << 20 },
	{ "g", UINT64_C(1) << 30 },
	{ "gb", UINT64_C(1) << 30 },
	{ "gib", UINT64_C(1) << 30 },
	{ "t", UINT64_C(1) << 40 },
	{ "tb", UINT64_C(1) << 40 },
	{ "tib", UINT64_C(1) << 40 },
};

int
units_parse_size(const char *s, uint64_t *out, const char **why)
{
	uint64_t whole = 0, frac_num = 0, frac_den = 1, mult = 0;
	const char *p = s;
	int digits = 0;

	*why = NULL;
	while (*p == ' ')
		p++;
	if (*p == '-') {
		*why = "a size cannot be negative";
		return -EINVAL;
	}
	for (; isdigit((unsigned char)*p); p++, digits++) {
		if (whole > (UNITS_SIZE_MAX * 2) / 10) {
			*why = "too large";
			return -ERANGE;
		}
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		p++;
		for (; isdigit((unsigned char)*p); p++, digits++) {
			if (frac_den < UINT64_C(1000000000)) {
				frac_num = frac_num * 10 + (uint64_t)(*p - '0');
				frac_den *= 10;
			}
		}
	}
	if (digits == 0) {
		*why = "expected a number followed by a unit, as 512MiB or 2GiB";
		return -EINVAL;
	}
	while (*p == ' ')
		p++;
	for (size_t i = 0; i < sizeof(size_suffixes) / sizeof(size_suffixes[0]); i++) {
		if (strcasecmp(p, size_suffixes[i].name) == 0) {
			mult = size_suffixes[i].mult;
			break;
		}
	}
	if (mult == 0) {
		*why = "unknown unit (use B, KiB, MiB, GiB or TiB)";
		return -EINVAL;
	}
	if (whole > UNITS_SIZE_MAX / mult + 1) {
		*why = "too large";
		return -ERANGE;
	}
	whole = whole * mult + frac_num * mult / frac_den;
	if (whole > UNITS_SIZE_MAX) {
		*why = "too large";
		return -ERANGE;
	}
	*out = whole;
	return 0;
}

int
units_parse_duration(const char *s, int64_t *out, const char **why)
{
	const char *p = s;
	int64_t total = 0;
	int groups = 0;

	*why = NULL;
	if (*p == '-') {
		*why = "a duration cannot be negative";
		return -EINVAL;
	}
	if (strcmp(p, "0") == 0) {
		*out = 0;
		return 0;
	}
	while (*p != '\0') {
		int64_t n = 0, mult;
		int digits = 0;

		for (; isdigit((unsigned char)*p); p++, digits++) {
			if (n > UNITS_DURATION_MAX) {
				*why = "too long";
				return -ERANGE;
			}
			n = n * 10 + (*p - '0');
		}
		if (digits == 0) {
			*why = "expected a number followed by a unit, as 90s, 10m, 2h or 1d";
			return -EINVAL;
		}
		switch (*p) {
		case 's':
			mult = 1;
			break;
		case 'm':
			mult = 60;
			break;
		case 'h':
			mult = 3600;
			break;
		case 'd':
			mult = 86400;
			break;
		case '\0':
			*why = "missing unit (use s, m, h or d, as 90s or 10m)";
			return -EINVAL;
		default:
			*why = "unknown unit (use s, m, h or d, as 90s or 10m)";
			return -EINVAL;
		}
		p++;
		if (n > UNITS_DURATION_MAX / mult || total > UNITS_DURATION_MAX - n * mult) {
			*why = "too long";
			return -ERANGE;
		}
		total += n * mult;
		groups++;
	}
	if (groups == 0) {
		*why = "empty duration";
		return -EINVAL;
	}
	*out = total;
	return 0;
}

int
units_parse_count(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t v = 0;
	bool big = false;

	if (*s == '\0')
		return -EINVAL;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (big || v > (INT64_MAX - (*s - '0')) / 10)
			big = true;
		else
			v = v * 10 + (*s - '0');
	}
	if (big || v < lo || v > hi)
		return -ERANGE;
	*out = v;
	return 0;
}

void
units_format_size(uint64_t bytes, char *out, size_t n)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, n, "%llu B", (unsigned long long)bytes);
	else if (v >= 100)
		snprintf(out, n, "%.0f %s", v, units[u]);
	else
		snprintf(out, n, "%.2f %s", v, units[u]);
}

void
units_format_duration(double seconds, char *out, size_t n)
{
	if (seconds < 0)
		seconds = 0;
	if (seconds < 60) {
		snprintf(out, n, "%.1fs", seconds);
	} else if (seconds < 3600) {
		long s = (long)(seconds + 0.5);
		snprintf(out, n, "%ldm%02lds", s / 60, s % 60);
	} else {
		long s = (long)(seconds + 0.5);
		snprintf(out, n, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
	}
}
