/* gguf_priv.h - the inside of struct gguf, shared by the file reader
 * (gguf.c) and the in-memory builder (gguf_build.c), nobody else. */
#ifndef SMK_FORMATS_GGUF_PRIV_H
#define SMK_FORMATS_GGUF_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "util/hashtab.h"

struct gguf_anode {
	const uint8_t *data;        /* first element, in the mapping */
	uint64_t n;
	uint32_t elem;              /* enum gguf_vtype */
	uint64_t *stride_off;       /* STRING: offset from data of element
	                             * k*GGUF_STR_STRIDE, k < ceil(n/STRIDE) */
	struct gguf_anode *kids;    /* ARRAY: one node per element */
};

struct gguf_kv {
	const char *key;            /* NUL-terminated copy in the pool */
	uint32_t type;              /* enum gguf_vtype */
	const uint8_t *val;         /* scalar bytes / string length prefix */
	struct gguf_anode arr;      /* type == ARRAY */
};

/* A bump allocator: everything built at open is freed at once at close. */
struct pool_blk {
	struct pool_blk *next;
	size_t used, cap;
	max_align_t mem[];
};

struct gguf {
	char *path;
	const uint8_t *base;
	uint64_t size;
	uint32_t version;
	uint64_t alignment;
	uint64_t data_offset;
	uint64_t n_kv, n_tensors;
	struct gguf_kv *kv;
	struct gguf_tensor *tensors;
	struct smk_hindex kv_index;  /* key -> kv[] entry */
	struct smk_hindex t_index;   /* name -> tensors[] entry */
	struct pool_blk *pool;
	uint64_t n_subarrays;
	/* Built models (gguf_build.c): the image is malloc'd, tensor bytes
	 * live in other files (sources) or in buffers the handle owns. */
	bool image_owned;
	char **sources;
	int n_sources;
	void **owned;
	size_t n_owned;
	void (*on_close)(void *);  /* releases what the data pointers point into */
	void *on_close_arg;
	/* A model read from object storage (formats/remote.c): source i is
	 * the staged backing file of remote[i]; both freed at close. */
	struct osrc **remote;
	struct ostore *store;
	bool guarded;                /* gguf_guard_unfetched(): see gguf.h */
};

/* Parse the image at g->base[0..g->size).  external: tensor data is not in
 * the image (a built model binds it afterwards), so the data section is not
 * checked. */
int gguf_parse(struct gguf *g, bool external, struct smk_err *err);

#endif
