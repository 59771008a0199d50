/* fuzz_safetensors.c - one safetensors file (daemon/formats/safetensors.c):
 * u64 header length, JSON header, data.  The input is the whole file; what
 * opens is walked (tensors, metadata, every data byte's last one). */
#include <stdlib.h>

#include "formats/safetensors.h"
#include "fuzz_common.h"

static char *path;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!path)
		path = fuzz_path(fuzz_dir(), "in.safetensors");
	fuzz_write(path, data, size);
	struct st_file *f = NULL;
	struct smk_err err = { 0 };
	if (st_open(&f, path, &err))
		return 0;
	volatile uint64_t h = st_data_offset(f) + st_file_size(f);
	for (uint64_t i = 0; i < st_n_tensors(f); i++) {
		const struct st_tensor *t = st_tensor_at(f, i);
		h += st_find(f, t->name) == t;
		h += st_dtype_size(t->dtype) + (uint64_t)t->n_dims;
		h += st_dtype_name(t->dtype)[0];
		const unsigned char *d = t->data;
		if (t->nbytes)
			h += d[0] + d[t->nbytes - 1];
	}
	for (uint64_t i = 0; i < st_n_metadata(f); i++) {
		const char *k, *v;
		if (st_metadata_at(f, i, &k, &v) == 0)
			h += st_metadata(f, k) == v;
	}
	st_close(f);
	(void)h;
	return 0;
}
