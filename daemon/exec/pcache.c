/* pcache.c - the prompt cache (see pcache.h): a table of entries over one
 * host region placed by the KV pool's allocator, looked up by a linear scan
 * (at most PCACHE_MAX_ENTRIES entries, each compared token by token up to
 * the first difference: microseconds, or a few milliseconds when a thousand
 * entries share a long document, against the milliseconds each position of
 * a prefix costs to compute). */
#include "exec/pcache.h"

#include <stdlib.h>
#include <string.h>

#include "exec/kvpool.h"

/* Enough entries for many conversations; bounds the scan of a lookup. */
#define PCACHE_MAX_ENTRIES 1024

struct pc_entry {
	uint64_t off;              /* in the region; the tokens lie there */
	uint64_t bytes;            /* as placed */
	uint64_t used;             /* LRU clock at its last use */
	int n;                     /* positions; 0: slot free */
};

struct pcache {
	int n_layer;
	int64_t kv_dim;
	char *mem;                 /* the region, KVPOOL_ALIGN aligned */
	struct kvpool *pool;
	struct pc_entry *ent;
	int max_ent;
	uint64_t clock;
	struct pcache_stats st;
};

/* An entry's parts: tokens, then K of every layer, then V. */
static uint64_t tok_bytes(int n)
{
	return kvpool_round((uint64_t)n * sizeof(int32_t));
}

static uint64_t half_bytes(const struct pcache *pc, int n)
{
	return kvpool_round((uint64_t)pc->n_layer * (uint64_t)n * (uint64_t)pc->kv_dim * sizeof(uint16_t));
}

uint64_t pcache_entry_bytes(const struct pcache *pc, int n)
{
	return tok_bytes(n) + 2 * half_bytes(pc, n);
}

static int32_t *ent_tok(const struct pcache *pc, const struct pc_entry *e)
{
	return (int32_t *)(pc->mem + e->off);
}

/* Layer il's rows of K (v = false) or V in an entry. */
static uint16_t *ent_rows(const struct pcache *pc, const struct pc_entry *e, bool v, int il)
{
	char *p = pc->mem + e->off + tok_bytes(e->n) + (v ? half_bytes(pc, e->n) : 0);
	return (uint16_t *)p + (int64_t)il * e->n * pc->kv_dim;
}

int pcache_new(struct pcache **out, uint64_t budget, int n_layer, int64_t kv_dim,
	       struct smk_err *err)
{
	if (n_layer < 1 || kv_dim < 1)
		return smk_fail(err, -EINVAL, "prompt cache: %d layers of %lld halves", n_layer,
				(long long)kv_dim);
	struct pcache *pc = calloc(1, sizeof(*pc));
	if (!pc)
		return smk_fail(err, -ENOMEM, "prompt cache: out of memory");
	pc->n_layer = n_layer;
	pc->kv_dim = kv_dim;
	budget = budget / KVPOOL_ALIGN * KVPOOL_ALIGN;
	int rc;
	if (budget < pcache_entry_bytes(pc, 1)) {
		rc = smk_fail(err, -EINVAL, "limits.prompt_cache: %llu bytes hold no position of this "
			      "model (one takes %llu bytes); 0 turns the cache off",
			      (unsigned long long)budget, (unsigned long long)pcache_entry_bytes(pc, 1));
		goto fail;
	}
	/* No more entries than one-position ones could fill the budget. */
	uint64_t most = budget / pcache_entry_bytes(pc, 1);
	pc->max_ent = most < PCACHE_MAX_ENTRIES ? (int)most : PCACHE_MAX_ENTRIES;
	pc->st.budget = budget;
	if ((rc = kvpool_new(&pc->pool, budget, pc->max_ent, err))) {
		smk_err_prefix(err, "limits.prompt_cache");
		goto fail;
	}
	pc->ent = calloc((size_t)pc->max_ent, sizeof(*pc->ent));
	if (budget > SIZE_MAX || !pc->ent ||
	    !(pc->mem = aligned_alloc(KVPOOL_ALIGN, (size_t)budget))) {
		rc = smk_fail(err, -ENOMEM, "limits.prompt_cache: cannot allocate its %llu bytes of RAM; "
			      "lower it (0 turns the cache off)", (unsigned long long)budget);
		goto fail;
	}
	*out = pc;
	return 0;
fail:
	pcache_free(pc);
	return rc;
}

void pcache_free(struct pcache *pc)
{
	if (!pc)
		return;
	kvpool_free(pc->pool);
	free(pc->ent);
	free(pc->mem);
	free(pc);
}

static int common_prefix(const int32_t *a, const int32_t *b, int n)
{
	int i = 0;
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* The entry sharing the longest prefix with tok[0..n), capped at max_len
 * (ties: the most recently used); *len its length. */
static struct pc_entry *best(const struct pcache *pc, const int32_t *tok, int n, int max_len,
			     int *len)
{
	struct pc_entry *b = NULL;
	*len = 0;
	if (max_len > n)
		max_len = n;
	for (int i = 0; i < pc->max_ent; i++) {
		struct pc_entry *e = &pc->ent[i];
		if (!e->n)
			continue;
		int l = common_prefix(ent_tok(pc, e), tok, e->n < max_len ? e->n : max_len);
		if (l > *len || (l == *len && l > 0 && e->used > b->used)) {
			*len = l;
			b = e;
		}
	}
	return b;
}

int pcache_peek(const struct pcache *pc, const int32_t *tok, int n, int max_len)
{
	int len;
	best(pc, tok, n, max_len, &len);
	return len;
}

int pcache_restore(struct pcache *pc, const int32_t *tok, int n, int max_len, struct kvcache *kv,
		   struct smk_err *err)
{
	pc->st.lookups++;
	if (max_len > kv->n_ctx)
		max_len = kv->n_ctx;
	int p;
	struct pc_entry *e = best(pc, tok, n, max_len, &p);
	if (!e || kv->n_pos != 0)
		return 0;
	const size_t rows = (size_t)p * (size_t)kv->kv_dim * sizeof(uint16_t);
	for (int il = 0; il < pc->n_layer; il++) {
		int rc;
		if ((rc = backend_upload(kv->be, kvcache_k(kv, il), ent_rows(pc, e, false, il), rows, err)) ||
		    (rc = backend_upload(kv->be, kvcache_v(kv, il), ent_rows(pc, e, true, il), rows, err))) {
			smk_err_prefix(err, "prompt cache: restoring %d positions", p);
			return rc;
		}
	}
	kv->n_pos = p;
	e->used = ++pc->clock;
	pc->st.hits++;
	pc->st.tokens_saved += (uint64_t)p;
	return p;
}

static void drop(struct pcache *pc, struct pc_entry *e)
{
	/* placed by pcache_store and dropped once: a failure is this file's bug */
	if (kvpool_release(pc->pool, e->off))
		abort();
	pc->st.bytes -= e->bytes;
	pc->st.entries--;
	e->n = 0;
}

static struct pc_entry *lru(struct pcache *pc)
{
	struct pc_entry *v = NULL;
	for (int i = 0; i < pc->max_ent; i++)
		if (pc->ent[i].n && (!v || pc->ent[i].used < v->used))
			v = &pc->ent[i];
	return v;
}

int pcache_store(struct pcache *pc, const int32_t *tok, struct kvcache *kv, struct smk_err *err)
{
	const int n = kv->n_pos;
	if (n < 1 || kv->n_layer != pc->n_layer || kv->kv_dim != pc->kv_dim)
		return 0;
	/* Already held (an entry of these tokens or more), or superseded. */
	for (int i = 0; i < pc->max_ent; i++) {
		struct pc_entry *e = &pc->ent[i];
		if (!e->n)
			continue;
		int l = common_prefix(ent_tok(pc, e), tok, e->n < n ? e->n : n);
		if (l == n) {
			e->used = ++pc->clock;
			return 0;
		}
		if (l == e->n) {
			drop(pc, e);
			pc->st.superseded++;
		}
	}
	const uint64_t bytes = pcache_entry_bytes(pc, n);
	if (bytes > pc->st.budget) {
		pc->st.too_big++;
		return 0;
	}
	/* Evict the least recently used until the entry finds an extent and a
	 * slot: with every entry gone the region is one extent, which holds it. */
	uint64_t off;
	while (kvpool_alloc(pc->pool, bytes, &off)) {
		struct pc_entry *v = lru(pc);
		if (!v)
			abort();  /* an empty region of >= bytes always fits it */
		drop(pc, v);
		pc->st.evictions++;
	}
	struct pc_entry *e = NULL;
	for (int i = 0; i < pc->max_ent && !e; i++)
		if (!pc->ent[i].n)
			e = &pc->ent[i];
	if (!e)
		abort();  /* the pool holds at most max_ent live extents */
	*e = (struct pc_entry){ .off = off, .bytes = bytes, .n = n };
	memcpy(ent_tok(pc, e), tok, sizeof(int32_t) * (size_t)n);
	const size_t rows = (size_t)n * (size_t)kv->kv_dim * sizeof(uint16_t);
	for (int il = 0; il < pc->n_layer; il++) {
		int rc;
		if ((rc = backend_download(kv->be, ent_rows(pc, e, false, il), kvcache_k(kv, il), rows, err)) ||
		    (rc = backend_download(kv->be, ent_rows(pc, e, true, il), kvcache_v(kv, il), rows, err))) {
			e->n = 0;
			kvpool_release(pc->pool, off);
			smk_err_prefix(err, "prompt cache: keeping %d positions", n);
			return rc;
		}
	}
	e->used = ++pc->clock;
	pc->st.bytes += bytes;
	pc->st.entries++;
	pc->st.stores++;
	return 0;
}

void pcache_get_stats(const struct pcache *pc, struct pcache_stats *out)
{
	*out = pc->st;
}
