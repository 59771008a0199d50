/* fuzz_gguf.c - GGUF files (daemon/formats/gguf.c) and the tokenizer built
 * from their keys (tokenizer_load_gguf, the next reader of the same bytes).
 * The input is the whole file.  Every accessor is walked on what opens, and
 * every byte of every tensor's data is read (checksummed), so a bound that
 * gguf_open let through shows up as an ASan report here. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/chat.h"
#include "fuzz_common.h"

static char *path;
static FILE *devnull;

static uint64_t walk_arr(const struct gguf_arr *a, int depth)
{
	uint64_t h = a->n;
	uint64_t n = a->n < 64 ? a->n : 64;
	for (uint64_t i = 0; i < n; i++) {
		const char *s;
		size_t len;
		int64_t i64;
		uint64_t u64;
		double f64;
		float f32;
		bool b;
		struct gguf_arr sub;
		if (gguf_arr_str(a, i, &s, &len) == 0)
			for (size_t k = 0; k < len; k++)
				h += (unsigned char)s[k];
		if (gguf_arr_i64(a, i, &i64) == 0)
			h += (uint64_t)i64;
		if (gguf_arr_u64(a, i, &u64) == 0)
			h += u64;
		if (gguf_arr_f64(a, i, &f64) == 0)
			h += f64 > 0;
		if (gguf_arr_f32(a, i, &f32) == 0)
			h += f32 > 0;
		if (gguf_arr_bool(a, i, &b) == 0)
			h += b;
		if (gguf_arr_arr(a, i, &sub) == 0 && depth < 16)
			h += walk_arr(&sub, depth + 1);
	}
	/* The last element too: the string index skips prefixes to reach it. */
	if (a->n > 64) {
		const char *s;
		size_t len;
		if (gguf_arr_str(a, a->n - 1, &s, &len) == 0 && len)
			h += (unsigned char)s[len - 1];
	}
	const unsigned char *d = gguf_arr_data(a);
	if (d && a->n)
		h += d[gguf_vtype_size(a->elem) * a->n - 1];
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!path) {
		path = fuzz_path(fuzz_dir(), "in.gguf");
		devnull = fopen("/dev/null", "w");
	}
	fuzz_write(path, data, size);
	struct gguf *g = NULL;
	struct smk_err err = { 0 };
	if (gguf_open(&g, path, &err))
		return 0;
	volatile uint64_t h = 0;
	for (uint64_t i = 0; i < gguf_n_kv(g); i++) {
		const char *key = gguf_kv_key(g, i);
		uint32_t u32;
		uint64_t u64;
		int64_t i64;
		float f32;
		double f64;
		bool b;
		const char *s;
		size_t len;
		struct gguf_arr a;
		h += gguf_has(g, key);
		h += gguf_get_u32(g, key, &u32, &err) == 0 ? u32 : 0;
		h += gguf_get_u64(g, key, &u64, &err) == 0 ? u64 : 0;
		h += gguf_get_i64(g, key, &i64, &err) == 0 ? (uint64_t)i64 : 0;
		h += gguf_get_f32(g, key, &f32, &err) == 0 && f32 > 0;
		h += gguf_get_f64(g, key, &f64, &err) == 0 && f64 > 0;
		h += gguf_get_bool(g, key, &b, &err) == 0 && b;
		if (gguf_get_str(g, key, &s, &len, &err) == 0 && len)
			h += (unsigned char)s[len - 1];
		if (gguf_get_arr(g, key, &a, &err) == 0)
			h += walk_arr(&a, 0);
		if (gguf_kv_arr(g, i, &a) == 0)
			h += a.n;
		h += gguf_kv_type(g, i);
	}
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor(g, i);
		h += gguf_find_tensor(g, t->name) == t;
		const unsigned char *d = t->data;
		for (uint64_t k = 0; k < t->nbytes; k += 61)
			h += d[k];
		if (t->nbytes)
			h += d[t->nbytes - 1];
	}
	gguf_dump(g, devnull);
	/* The tokenizer reads the tokenizer.ggml.* keys of the same file, and
	 * the chat format is detected from them. */
	struct tokenizer *t = NULL;
	if (tokenizer_load_gguf(&t, g, &err) == 0) {
		h += chat_detect(g, t);
		static const char text[] = "Hello world! <|im_start|>user\n\xe2\x96\x81 12345 \xff\xfe<s></s>";
		int32_t ids[512];
		size_t n = 0;
		if (tokenizer_encode(t, text, sizeof(text) - 1, true, true, ids, 512, &n, &err) == 0) {
			char buf[256];
			for (size_t i = 0; i < n; i++)
				h += tokenizer_piece(t, ids[i], true, buf, sizeof(buf));
		}
		tokenizer_free(t);
	}
	gguf_close(g);
	(void)h;
	return 0;
}
