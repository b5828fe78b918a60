/* src/cloud/provider.c: the providers eph-cloud knows. */
#include "cloud/provider.h"

#include <string.h>

#include "util/attr.h"

static const struct cloud_provider *const providers[] = {
	&cloud_provider_do,
};

const struct cloud_provider *
provider_find(const char *name)
{
	for (size_t i = 0; i < EPH_ARRAY_LEN(providers); i++)
		if (strcmp(providers[i]->name, name) == 0)
			return providers[i];
	return NULL;
}
