/* fuzz_common.c - scratch files and fixture vocabularies for the harnesses. */
#include "fuzz_common.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/gguf_build.h"
#include "formats/hf/tokenizer_json.h"

const char *const fuzz_vocabs[FUZZ_N_VOCABS] = {
	"tokenizer/odd-spm.gguf",      /* SentencePiece (llama) */
	"tokenizer/odd-bpe.gguf",      /* byte-level BPE (gpt2) */
	"tokenizer/odd-gpt4o.gguf",    /* o200k pre-tokenizer */
	"hf-tokenizers/gpt2",          /* tokenizer.json, ByteLevel */
	"hf-tokenizers/llama3",
	"hf-tokenizers/qwen2",         /* NFC */
	"hf-tokenizers/metaspace",
	"hf-tokenizers/spm-unk",
	"hf-models/gpt-oss-bf16",      /* harmony markers */
};

static char scratch[4096];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p) ? 0 : 0;
}

static void rm_scratch(void)
{
	nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_dir(void)
{
	if (scratch[0])
		return scratch;
	const char *tmp = getenv("TMPDIR");
	snprintf(scratch, sizeof(scratch), "%s/smoke-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(scratch)) {
		perror("fuzz: mkdtemp");
		abort();
	}
	atexit(rm_scratch);
	return scratch;
}

char *fuzz_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (!p)
		abort();
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

void fuzz_write(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) {
		perror(path);
		abort();
	}
}

char *fuzz_fixture(const char *rel)
{
	const char *fx = getenv("SMOKE_FIXTURES");
	return fuzz_path(fx && *fx ? fx : SMOKE_FUZZ_FIXTURES, rel);
}

void fuzz_copy(const char *fixture_rel, const char *dir, const char *name)
{
	char *src = fuzz_fixture(fixture_rel), *dst = fuzz_path(dir, name);
	FILE *f = fopen(src, "rb");
	if (!f) {
		perror(src);
		abort();
	}
	char *buf = NULL;
	size_t n = 0, cap = 0, got;
	do {
		if (n + 65536 > cap) {
			cap = cap ? 2 * cap : 65536;
			if (!(buf = realloc(buf, cap + 65536)))
				abort();
		}
		got = fread(buf + n, 1, 65536, f);
		n += got;
	} while (got);
	fclose(f);
	fuzz_write(dst, buf, n);
	free(buf);
	free(src);
	free(dst);
}

struct tokenizer *fuzz_tokenizer(const char *fixture_rel, struct gguf **g)
{
	char *path = fuzz_fixture(fixture_rel);
	struct smk_err err = { 0 };
	struct gguf *gg = NULL;
	struct tokenizer *t = NULL;
	struct stat st;
	int rc;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		struct gguf_builder *b;
		if ((rc = gguf_builder_new(&b, path)))
			abort();
		if ((rc = tokenizer_json_to_gguf(b, path, &err))) {
			gguf_builder_free(b);
		} else {
			rc = gguf_builder_finish(b, &gg, &err);
		}
	} else {
		rc = gguf_open(&gg, path, &err);
	}
	if (!rc)
		rc = tokenizer_load_gguf(&t, gg, &err);
	if (rc) {
		fprintf(stderr, "fuzz: vocabulary %s: %s\n", path, err.msg);
		abort();
	}
	free(path);
	if (g)
		*g = gg;
	else
		gguf_close(gg);
	return t;
}
