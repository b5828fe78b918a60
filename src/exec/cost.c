/* src/exec/cost.c: the arithmetic of `eph cost` (cost.h, docs/cost.md). */
#include "exec/cost.h"

#include <errno.h>
#include <stdlib.h>

#include "util/xalloc.h"

uint64_t
cost_run_memory(const struct cost_run *r)
{
	if (r->limit > 0)
		return r->limit;
	return r->peak > 0 ? (uint64_t)r->peak : 0;
}

/* Per second, pro rata of the size's monthly price: the bill of a rate without its own. */
static double
bill_per_second(const struct cost_size *sz, double seconds)
{
	return sz->price_monthly * seconds / COST_MONTH_S;
}

double
cost_run_cost(const struct cost_run *r)
{
	const struct cost_rate *rate = r->rate;
	struct cost_size sz;

	if (rate == NULL || r->seconds < 0)
		return 0;
	if (rate->nsizes == 0) {
		if (rate->memory == 0)
			return 0;
		return rate->price_monthly * ((double)cost_run_memory(r) / (double)rate->memory) *
		       (r->seconds / COST_MONTH_S);
	}
	if (cost_server(rate, cost_run_memory(r), &sz) < 0)
		sz = rate->sizes[rate->nsizes - 1]; /* it ran, so on the largest there is */
	return rate->bill != NULL ? rate->bill(&sz, r->seconds) : bill_per_second(&sz, r->seconds);
}

int
cost_server(const struct cost_rate *rate, uint64_t bytes, struct cost_size *out)
{
	uint64_t m = COST_SERVER_MIN;

	if (rate->nsizes > 0) {
		for (size_t i = 0; i < rate->nsizes; i++) {
			if (rate->sizes[i].memory >= bytes) {
				*out = rate->sizes[i];
				return 0;
			}
		}
		return -ENOENT;
	}
	while (m < bytes) {
		if (m > UINT64_MAX / 2)
			return -ENOENT;
		m *= 2;
	}
	out->name = NULL;
	out->memory = m;
	out->price_monthly =
	        rate->memory > 0 ? rate->price_monthly * (double)m / (double)rate->memory : 0;
	return 0;
}

double
cost_floor(const struct cost_rate *rate, uint64_t bytes, double seconds)
{
	struct cost_size sz;
	uint64_t m;

	if (seconds <= 0)
		return 0;
	if (rate->nsizes > 0) {
		if (cost_server(rate, bytes, &sz) < 0)
			return 0;
		return bill_per_second(&sz, seconds);
	}
	if (rate->memory == 0)
		return 0;
	m = bytes > UINT64_MAX - COST_STEP ? bytes
	                                   : (bytes + COST_STEP - 1) / COST_STEP * COST_STEP;
	return rate->price_monthly * ((double)m / (double)rate->memory) * (seconds / COST_MONTH_S);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
cost_median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void
cost_job_sum(const struct cost_run *runs, size_t n, double fires_month,
             const struct cost_rate *rate, struct cost_job *out)
{
	double *costs = xcalloc(n > 0 ? n : 1, sizeof(double));
	double *secs = xcalloc(n > 0 ? n : 1, sizeof(double));
	size_t k = 0;

	*out = (struct cost_job){ 0 };
	for (size_t i = 0; i < n; i++) {
		const struct cost_run *r = &runs[i];
		uint64_t need = 0;

		if (r->succeeded && r->peak > 0)
			need = (uint64_t)r->peak;
		else if (r->oom && r->limit > 0)
			need = r->limit + COST_STEP;
		if (need > out->need)
			out->need = need;
		if (r->seconds < 0)
			continue;
		costs[k] = cost_run_cost(r);
		secs[k] = r->seconds;
		out->cost += costs[k];
		out->run_seconds += r->seconds;
		if (r->rate == NULL || (r->rate->nsizes == 0 && r->rate->price_monthly <= 0))
			out->nunpriced++;
		k++;
	}
	out->nruns = k;
	out->typical_cost = cost_median(costs, k);
	out->typical_s = cost_median(secs, k);
	out->fires_month = fires_month;
	out->month = fires_month * out->typical_cost;
	if (out->need > 0 && rate != NULL) {
		if (cost_server(rate, out->need, &out->server) < 0)
			out->server = (struct cost_size){ 0 };
		out->floor = cost_floor(rate, out->need, out->run_seconds);
		out->floor_month = cost_floor(rate, out->need, fires_month * out->typical_s);
	}
	free(costs);
	free(secs);
}
