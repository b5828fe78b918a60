/* src/exec/cloud_size.c: a cloud executor's sizes, their cache file, the size chosen for a
 * run, and DigitalOcean's billing rule. */
#include "exec/cloud_size.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exec/cost.h"
#include "util/buf.h"
#include "util/fsio.h"
#include "util/xalloc.h"

void
cloud_catalog_free(struct cloud_catalog *cat)
{
	if (cat == NULL)
		return;
	for (size_t i = 0; i < cat->nsizes; i++) {
		struct cloud_size *s = &cat->sizes[i];

		for (size_t r = 0; r < s->nregions; r++)
			free(s->regions[r]);
		free(s->regions);
		free(s->slug);
	}
	free(cat->sizes);
	free(cat->provider);
	free(cat);
}

/* Reads size J into S (zeroed). 0, or -EINVAL with *ERR set. */
static int
size_read(const json_t *j, size_t idx, struct cloud_size *s, char **err)
{
	json_t *slug = json_object_get(j, "slug"), *mem = json_object_get(j, "memory_mib");
	json_t *vcpus = json_object_get(j, "vcpus"), *disk = json_object_get(j, "disk_gb");
	json_t *ph = json_object_get(j, "price_hourly"), *pm = json_object_get(j, "price_monthly");
	json_t *regions = json_object_get(j, "regions"), *avail = json_object_get(j, "available");
	json_t *r;
	size_t i;

	if (!json_is_string(slug) || json_string_length(slug) == 0 || !json_is_integer(mem) ||
	    json_integer_value(mem) <= 0 || json_integer_value(mem) > (INT64_C(1) << 40) ||
	    !json_is_integer(vcpus) || !json_is_integer(disk) || !json_is_number(ph) ||
	    json_number_value(ph) < 0 || !json_is_number(pm) || json_number_value(pm) < 0 ||
	    !json_is_array(regions) || !json_is_boolean(avail)) {
		*err = xasprintf("size %zu: not {\"slug\", \"memory_mib\", \"vcpus\", \"disk_gb\", "
		                 "\"price_hourly\", \"price_monthly\", \"regions\", \"available\"}",
		                 idx);
		return -EINVAL;
	}
	s->slug = xstrdup(json_string_value(slug));
	s->memory = (uint64_t)json_integer_value(mem) << 20;
	s->vcpus = (int)json_integer_value(vcpus);
	s->disk_gb = (int)json_integer_value(disk);
	s->price_hourly = json_number_value(ph);
	s->price_monthly = json_number_value(pm);
	s->available = json_is_true(avail);
	s->regions = xcalloc(json_array_size(regions) + 1, sizeof(char *));
	json_array_foreach(regions, i, r)
	{
		if (!json_is_string(r)) {
			*err = xasprintf("size %s: its regions are not all strings", s->slug);
			return -EINVAL;
		}
		s->regions[s->nregions++] = xstrdup(json_string_value(r));
	}
	return 0;
}

int
cloud_catalog_parse(const char *text, size_t len, struct cloud_catalog **out, char **err)
{
	json_error_t e;
	json_t *j = json_loadb(text, len, 0, &e), *sizes, *v, *it;
	struct cloud_catalog *cat = NULL;
	size_t i;
	int rc = -EINVAL;

	*out = NULL;
	*err = NULL;
	if (j == NULL) {
		*err = xasprintf("not JSON: %s (line %d, column %d)", e.text, e.line, e.column);
		return -EINVAL;
	}
	sizes = json_object_get(j, "sizes");
	if (!json_is_array(sizes)) {
		*err = xstrdup("no \"sizes\" list");
		goto out;
	}
	v = json_object_get(j, "version");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) != CLOUD_CATALOG_VERSION)) {
		*err = xasprintf("version is not %d", CLOUD_CATALOG_VERSION);
		goto out;
	}
	cat = xcalloc(1, sizeof(*cat));
	v = json_object_get(j, "provider");
	if (json_is_string(v))
		cat->provider = xstrdup(json_string_value(v));
	v = json_object_get(j, "fetched_at");
	if (json_is_integer(v))
		cat->fetched_at = json_integer_value(v);
	cat->sizes = xcalloc(json_array_size(sizes) + 1, sizeof(*cat->sizes));
	json_array_foreach(sizes, i, it)
	{
		/* counted first, so that a half-read size is freed with the rest */
		cat->nsizes++;
		if (size_read(it, i, &cat->sizes[i], err) != 0)
			goto out;
	}
	*out = cat;
	cat = NULL;
	rc = 0;
out:
	cloud_catalog_free(cat);
	json_decref(j);
	return rc;
}

int
cloud_catalog_load(const char *path, struct cloud_catalog **out, char **err)
{
	struct buf b;
	int rc;

	*out = NULL;
	*err = NULL;
	buf_init(&b, CLOUD_CATALOG_MAX);
	rc = fsio_read_file(path, &b);
	if (rc == -ENOENT) {
		buf_free(&b);
		return rc;
	}
	if (rc < 0) {
		*err = xasprintf("%s: %s", path, rc == -E2BIG ? "too large" : strerror(-rc));
	} else {
		char *why = NULL;

		rc = cloud_catalog_parse(b.data != NULL ? b.data : "", b.len, out, &why);
		if (rc != 0) {
			*err = xasprintf("%s: %s", path, why);
			free(why);
		}
	}
	buf_free(&b);
	return rc;
}

int
cloud_catalog_save(const char *path, const struct cloud_catalog *cat, const char *provider,
                   int64_t fetched_at)
{
	json_t *root, *sizes = json_array();
	char *text, *dir;
	int rc;

	for (size_t i = 0; i < cat->nsizes; i++) {
		const struct cloud_size *s = &cat->sizes[i];
		json_t *regions = json_array();

		for (size_t r = 0; r < s->nregions; r++)
			json_array_append_new(regions, json_string(s->regions[r]));
		json_array_append_new(
		        sizes, json_pack("{s:s, s:I, s:i, s:i, s:f, s:f, s:o, s:b}", "slug",
		                         s->slug, "memory_mib", (json_int_t)(s->memory >> 20),
		                         "vcpus", s->vcpus, "disk_gb", s->disk_gb, "price_hourly",
		                         s->price_hourly, "price_monthly", s->price_monthly,
		                         "regions", regions, "available", (int)s->available));
	}
	root = json_pack("{s:i, s:s, s:I, s:o}", "version", CLOUD_CATALOG_VERSION, "provider",
	                 provider, "fetched_at", (json_int_t)fetched_at, "sizes", sizes);
	text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(12));
	json_decref(root);
	if (text == NULL)
		abort();
	dir = xstrdup(path);
	if (strrchr(dir, '/') != NULL) {
		*strrchr(dir, '/') = '\0';
		rc = dir[0] != '\0' ? fsio_mkdirs(dir, 0700) : 0;
	} else {
		rc = 0;
	}
	free(dir);
	if (rc == 0)
		rc = fsio_write_atomic(path, text, strlen(text), 0644, 0);
	free(text);
	return rc;
}

bool
cloud_catalog_fresh(const struct cloud_catalog *cat, int64_t now)
{
	return cat->fetched_at > 0 && now >= cat->fetched_at &&
	       now - cat->fetched_at < CLOUD_CATALOG_MAX_AGE;
}

char *
cloud_catalog_path(const char *state_dir, const char *executor)
{
	return xasprintf("%s/cloud/%s-sizes.json", state_dir, executor);
}

static bool
in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

static bool
sold_in(const struct cloud_size *s, const char *region)
{
	return in_list(region, (const char *const *)s->regions, s->nregions);
}

static int
cheapest_first(const void *a, const void *b)
{
	const struct cloud_size *x = *(const struct cloud_size *const *)a;
	const struct cloud_size *y = *(const struct cloud_size *const *)b;

	if (x->price_hourly != y->price_hourly)
		return x->price_hourly < y->price_hourly ? -1 : 1;
	if (x->memory != y->memory)
		return x->memory < y->memory ? -1 : 1;
	return strcmp(x->slug, y->slug);
}

/* The sizes of CAT sold and available in REGION, within ALLOWED, that hold NEED bytes (0:
 * any), cheapest first, into a new array. */
static const struct cloud_size **
select_sizes(const struct cloud_catalog *cat, const char *region, uint64_t need,
             const char *const *allowed, size_t nallowed, size_t *n)
{
	const struct cloud_size **v = xcalloc(cat->nsizes + 1, sizeof(*v));

	*n = 0;
	for (size_t i = 0; i < cat->nsizes; i++) {
		const struct cloud_size *s = &cat->sizes[i];

		if (!s->available || !sold_in(s, region) || s->memory < need)
			continue;
		if (nallowed > 0 && !in_list(s->slug, allowed, nallowed))
			continue;
		v[(*n)++] = s;
	}
	qsort(v, *n, sizeof(*v), cheapest_first);
	return v;
}

int
cloud_size_candidates(const struct cloud_catalog *cat, const char *region, uint64_t memory,
                      uint64_t reserve, const char *const *allowed, size_t nallowed,
                      const struct cloud_size ***out, size_t *n)
{
	uint64_t need = memory + reserve < memory ? UINT64_MAX : memory + reserve;

	*out = select_sizes(cat, region, need, allowed, nallowed, n);
	if (*n == 0) {
		free(*out);
		*out = NULL;
		return -ENOENT;
	}
	return 0;
}

const struct cloud_size *
cloud_size_choose(const struct cloud_catalog *cat, const char *region, uint64_t memory,
                  uint64_t reserve, const char *const *allowed, size_t nallowed)
{
	const struct cloud_size **v, *best = NULL;
	size_t n;

	if (cloud_size_candidates(cat, region, memory, reserve, allowed, nallowed, &v, &n) == 0)
		best = v[0];
	free(v);
	return best;
}

char *
cloud_size_seen(const struct cloud_catalog *cat, const char *region, const char *const *allowed,
                size_t nallowed)
{
	size_t n;
	const struct cloud_size **v = select_sizes(cat, region, 0, allowed, nallowed, &n);
	struct buf b;

	buf_init(&b, BUF_MAX_UNLIMITED);
	for (size_t i = 0; i < n; i++)
		if (buf_printf(&b, "%s%s %" PRIu64 " MiB", i > 0 ? ", " : "", v[i]->slug,
		               v[i]->memory >> 20) != 0)
			abort();
	free(v);
	if (n == 0 && buf_puts(&b, "none") != 0)
		abort();
	return buf_steal(&b);
}

double
cloud_bill_do(double price_hourly, double price_monthly, int64_t created, double seconds)
{
	double bill;

	if (!(seconds > 0))
		seconds = 0;
	if (created >= CLOUD_DO_PER_SECOND_SINCE) {
		/* per second, at least 60 s or $0.01, whichever is more */
		bill = fmax(seconds, CLOUD_DO_MIN_SECONDS) * price_hourly / 3600.0;
		bill = fmax(bill, CLOUD_DO_MIN_USD);
	} else {
		/* per started hour, at least one */
		bill = fmax(ceil(seconds / 3600.0), 1.0) * price_hourly;
	}
	if (price_monthly > 0 && bill > price_monthly)
		bill = price_monthly;
	return bill;
}

double
cloud_bill_do_ladder(const struct cost_size *sz, double seconds)
{
	return cloud_bill_do(sz->price_monthly / CLOUD_DO_HOURS_MONTH, sz->price_monthly,
	                     CLOUD_DO_PER_SECOND_SINCE, seconds);
}
