/* src/util/units.h: sizes ("512MiB", binary whatever the suffix) and durations ("90s", "2h"). */
#ifndef EPH_UTIL_UNITS_H
#define EPH_UTIL_UNITS_H
#include <stddef.h>
#include <stdint.h>

#include "util/attr.h"

#define UNITS_SIZE_MAX     (UINT64_C(1) << 50)         /* 1 PiB: anything above is a typo */
#define UNITS_DURATION_MAX (INT64_C(366) * 86400 * 10) /* ten years, in seconds */

/* Parses a size: digits, an optional fraction, an optional suffix among B K KB KiB M MB MiB
 * G GB GiB T TB TiB (case-insensitive, all binary). A bare number is bytes. Returns 0, or
 * -EINVAL (not a size; *why says what is wrong) or -ERANGE (above UNITS_SIZE_MAX). */
EPH_MUST_CHECK int units_parse_size(const char *s, uint64_t *out, const char **why);
/* Parses a duration: one or more NUMBER UNIT groups ("1h30m"), units s m h d; a bare 0 is
 * accepted. Result in seconds. Returns 0, -EINVAL or -ERANGE as above. */
EPH_MUST_CHECK int units_parse_duration(const char *s, int64_t *out, const char **why);
/* Parses a count or an id from the command line: ASCII digits only (no sign, no space, no
 * suffix), from LO to HI. Returns 0 and *out, -EINVAL (not digits only) or -ERANGE (outside
 * LO..HI); *out is untouched on failure. */
EPH_MUST_CHECK int units_parse_count(const char *s, int64_t lo, int64_t hi, int64_t *out);
/* Formats bytes for a person: "512 MiB", "2.00 GiB". Writes at most N bytes into OUT. */
void units_format_size(uint64_t bytes, char *out, size_t n);
/* Formats seconds for a person: "41.2s", "3m05s", "2h00m". Writes at most N bytes. */
void units_format_duration(double seconds, char *out, size_t n);

#endif
