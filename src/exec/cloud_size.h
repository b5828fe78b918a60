/* src/exec/cloud_size.h: a cloud executor's sizes (docs/digitalocean.md "The API side"):
 * the catalogue eph-cloud fetched and its cache file, the size chosen for a run's memory, and
 * the provider's billing rule, in one place. Pure C with jansson, no libcurl: the daemon and
 * `eph validate` link it; the HTTP is eph-cloud's.
 *
 * The cache file, STATE/cloud/EXECUTOR-sizes.json, written atomically (fsio_write_atomic):
 *   {"version": 1, "provider": "digitalocean", "fetched_at": EPOCH_SECONDS,
 *    "sizes": [ eph-cloud sizes' objects: {"slug", "memory_mib", "vcpus", "disk_gb",
 *               "price_hourly", "price_monthly", "regions": [...], "available"} ]}
 * It is fresh for CLOUD_CATALOG_MAX_AGE seconds (a day); a stale one is still read (offline
 * validation, a provider down) and refreshed when it can be. */
#ifndef EPH_EXEC_CLOUD_SIZE_H
#define EPH_EXEC_CLOUD_SIZE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/attr.h"

#define CLOUD_CATALOG_VERSION 1
#define CLOUD_CATALOG_MAX_AGE 86400      /* seconds: the catalogue is fetched again daily */
#define CLOUD_CATALOG_MAX     (4u << 20) /* a cache file; DigitalOcean's ~150 sizes: ~40 KiB */

/* What a machine needs besides the job's own `memory`: the operating system's and the agent's
 * share. 256 MiB, an estimate from the stock Debian 12 image DigitalOcean boots: of a
 * droplet's advertised memory the kernel keeps ~60-100 MiB for itself (MemTotal of an
 * s-1vcpu-1gb reads ~960 MiB), and its idle userland (systemd, journald, sshd, cloud-init's
 * leftovers, DigitalOcean's droplet-agent) holds ~100-150 MiB; the agent and its ssh session
 * add ~10 MiB. The executor's `reserve` key changes it; docs/digitalocean.md says the same. */
#define CLOUD_RESERVE_DEFAULT (UINT64_C(256) << 20)

struct cloud_size {
	char *slug;
	uint64_t memory; /* bytes (the API's memory_mib x 1 MiB) */
	int vcpus;
	int disk_gb;
	double price_hourly; /* USD */
	double price_monthly;
	char **regions;
	size_t nregions;
	bool available;
};

struct cloud_catalog {
	char *provider;     /* NULL when read from eph-cloud's answer */
	int64_t fetched_at; /* epoch seconds; 0 = unknown */
	struct cloud_size *sizes;
	size_t nsizes;
};

/* Parses TEXT (LEN bytes): a cache file, or eph-cloud sizes' answer {"sizes": [...]}. 0 and
 * *OUT a new catalogue (cloud_catalog_free); or -EINVAL with *ERR (caller frees) saying what is
 * wrong. */
EPH_MUST_CHECK int cloud_catalog_parse(const char *text, size_t len, struct cloud_catalog **out,
                                       char **err);
/* Reads the cache file PATH: 0; -ENOENT when there is none; -EINVAL (*ERR set) when it is not
 * one; another -errno of reading it (*ERR set). */
EPH_MUST_CHECK int cloud_catalog_load(const char *path, struct cloud_catalog **out, char **err);
/* Writes CAT as the cache file PATH (its directory made 0700 if missing), with PROVIDER and
 * FETCHED_AT, atomically. 0 or -errno. */
EPH_MUST_CHECK int cloud_catalog_save(const char *path, const struct cloud_catalog *cat,
                                      const char *provider, int64_t fetched_at);
void cloud_catalog_free(struct cloud_catalog *cat); /* NULL is fine */
/* Whether CAT, fetched at CAT->fetched_at, is still fresh at NOW (epoch seconds). */
bool cloud_catalog_fresh(const struct cloud_catalog *cat, int64_t now);
/* STATE_DIR/cloud/EXECUTOR-sizes.json; the caller frees. */
char *cloud_catalog_path(const char *state_dir, const char *executor);

/* The sizes a run of MEMORY bytes (plus RESERVE) may have in REGION, cheapest first (by hourly
 * price, then memory, then slug): available, sold in REGION, memory >= MEMORY + RESERVE, and,
 * when NALLOWED > 0, named in ALLOWED. *OUT (caller frees the array, not the sizes, which stay
 * CAT's) holds *N of them; the first is the size to create, the next ones what to try after a
 * 422. 0, or -ENOENT when none fits (*OUT NULL). */
EPH_MUST_CHECK int cloud_size_candidates(const struct cloud_catalog *cat, const char *region,
                                         uint64_t memory, uint64_t reserve,
                                         const char *const *allowed, size_t nallowed,
                                         const struct cloud_size ***out, size_t *n);
/* The cheapest candidate (cloud_size_candidates' first), or NULL when none fits. */
const struct cloud_size *cloud_size_choose(const struct cloud_catalog *cat, const char *region,
                                           uint64_t memory, uint64_t reserve,
                                           const char *const *allowed, size_t nallowed);
/* The sizes CAT holds for REGION within ALLOWED, for a message that none fits:
 * "s-1vcpu-1gb 1024 MiB, s-2vcpu-4gb 4096 MiB" (cheapest first; "none" when empty). Caller
 * frees. */
char *cloud_size_seen(const struct cloud_catalog *cat, const char *region,
                      const char *const *allowed, size_t nallowed);

/* DigitalOcean's billing rule, the one place it is written: what a droplet created at
 * CREATED (epoch seconds) and deleted SECONDS later costs at PRICE_HOURLY (USD), capped at
 * PRICE_MONTHLY (a month's charge is never more than the size's monthly price; 0 = no cap).
 * Droplets created since 2026-01-01 are billed per second with a minimum of 60 seconds or
 * $0.01, whichever is more; those created before, per started hour (at least one). */
double cloud_bill_do(double price_hourly, double price_monthly, int64_t created, double seconds);
/* cost.h's BILL for a ladder of DigitalOcean sizes (`eph cost`): cloud_bill_do for a droplet
 * created since 2026-01-01, at SZ's monthly price over 672 hours (how DigitalOcean derives its
 * hourly prices). */
struct cost_size;
double cloud_bill_do_ladder(const struct cost_size *sz, double seconds);
#define CLOUD_DO_HOURS_MONTH      672.0
#define CLOUD_DO_PER_SECOND_SINCE INT64_C(1767225600) /* 2026-01-01T00:00:00Z */
#define CLOUD_DO_MIN_SECONDS      60.0
#define CLOUD_DO_MIN_USD          0.01

#endif
