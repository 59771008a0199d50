/* hashtab.c - sizing of the open-addressing index (see hashtab.h). */
#include "util/hashtab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int smk_hindex_init(struct smk_hindex *x, uint64_t max)
{
	memset(x, 0, sizeof(*x));
	if (max > SMK_HINDEX_MAX)
		return -E2BIG;
	uint64_t cap = 16;
	while (cap < 2 * max)
		cap <<= 1;
	/* All-ones bytes are -1 in every slot: empty. */
	if (!(x->slot = malloc((size_t)cap * sizeof(*x->slot))))
		return -ENOMEM;
	memset(x->slot, 0xff, (size_t)cap * sizeof(*x->slot));
	x->mask = (uint32_t)(cap - 1);
	x->max = (uint32_t)max;
	return 0;
}

void smk_hindex_deinit(struct smk_hindex *x)
{
	free(x->slot);
	memset(x, 0, sizeof(*x));
}
