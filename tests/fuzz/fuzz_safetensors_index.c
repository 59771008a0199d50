/* fuzz_safetensors_index.c - a sharded checkpoint's
 * model.safetensors.index.json (daemon/formats/safetensors_set.c).  The
 * input is the index; the scratch directory holds the three shards of
 * fixtures/safetensors/sets/sharded (and a file the index may name that is
 * no safetensors file), so an index naming them right opens the set. */
#include <stdio.h>
#include <stdlib.h>

#include "formats/safetensors.h"
#include "fuzz_common.h"

static char *index_path;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!index_path) {
		const char *dir = fuzz_dir();
		static const char *const shards[] = {
			"model-00001-of-00003.safetensors",
			"model-00002-of-00003.safetensors",
			"model-00003-of-00003.safetensors",
			"unrelated-00009.safetensors",
		};
		for (int i = 0; i < 4; i++) {
			char rel[256];
			snprintf(rel, sizeof(rel), "safetensors/sets/sharded/%s", shards[i]);
			fuzz_copy(rel, dir, shards[i]);
		}
		char *junk = fuzz_path(dir, "junk.bin");
		fuzz_write(junk, "not a safetensors file", 22);
		free(junk);
		index_path = fuzz_path(dir, "model.safetensors.index.json");
	}
	fuzz_write(index_path, data, size);
	struct st_set *s = NULL;
	struct smk_err err = { 0 };
	if (st_set_open(&s, fuzz_dir(), &err))
		return 0;
	volatile uint64_t h = (uint64_t)st_set_n_files(s);
	for (uint64_t i = 0; i < st_set_n_tensors(s); i++) {
		int fi = -1, fj = -1;
		const struct st_tensor *t = st_set_tensor_at(s, i, &fi);
		h += st_set_find(s, t->name, &fj) == t && fi == fj;
		h += st_file_size(st_set_file(s, fi));
	}
	st_set_close(s);
	(void)h;
	return 0;
}
