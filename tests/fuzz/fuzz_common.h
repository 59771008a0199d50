/* fuzz_common.h - what the libFuzzer harnesses (tests/fuzz/fuzz_*.c) share.
 *
 * The parsers of files take a path, so a harness writes each input into a
 * scratch directory of its own (under $TMPDIR, removed at exit) and opens
 * it there: the code under test is exactly the daemon's, mmap included.
 * Fixtures (vocabularies, tiny models) are read from the source tree, whose
 * path meson compiles in as SMOKE_FUZZ_FIXTURES (SMOKE_FIXTURES in the
 * environment wins), so no harness needs a model download or the network.
 */
#ifndef SMOKE_FUZZ_COMMON_H
#define SMOKE_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

/* The harness's scratch directory, made at the first call (aborts if it
 * cannot be: a harness that cannot write is a setup error, not a finding). */
const char *fuzz_dir(void);

/* dir/name (a static buffer per call site is not needed: the result is a
 * malloc'd string the caller frees). */
char *fuzz_path(const char *dir, const char *name);

/* Write n bytes to path (truncating); aborts on failure. */
void fuzz_write(const char *path, const void *data, size_t n);

/* fixtures/rel as an absolute path (malloc'd). */
char *fuzz_fixture(const char *rel);

/* Copy a fixture file to dir/name. */
void fuzz_copy(const char *fixture_rel, const char *dir, const char *name);

/* A tokenizer from a vocabulary fixture: a .gguf file or a directory with
 * tokenizer.json (translated as the model loader does).  *g (if g is not
 * NULL) gets the handle it was built from, kept open.  Aborts on failure:
 * the fixtures are known good. */
struct tokenizer *fuzz_tokenizer(const char *fixture_rel, struct gguf **g);

/* The vocabularies the tokenizer, chat and harmony harnesses pick from. */
#define FUZZ_N_VOCABS 9
extern const char *const fuzz_vocabs[FUZZ_N_VOCABS];

#endif
