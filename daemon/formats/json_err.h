/* json_err.h - loading JSON with jansson under memory pressure.
 *
 * jansson fills json_error_t for a syntax error, but an allocation that
 * fails during json_load*() comes out in four ways: before it has read
 * anything (its buffers) NULL with the error as initialised (no text,
 * line -1); inside the lexer as a syntax error at that point ("string or
 * '}' expected"); elsewhere json_error_out_of_memory; and, worst, a string
 * whose buffer could not grow loses that byte and the load SUCCEEDS
 * ("LlamaForCausalM").  No sign of it survives the load (jansson resets
 * errno while parsing numbers), so json_err.c gives jansson allocators
 * (json_set_alloc_funcs, installed before main) that note a failure on the
 * calling thread, and these loads are not trusted when one was noted: the
 * caller reports out of memory (-ENOMEM, HTTP 500), neither bad JSON nor
 * what the damaged tree says (tests/unit/faults/test_faults.c). */
#ifndef SMK_FORMATS_JSON_ERR_H
#define SMK_FORMATS_JSON_ERR_H

#include <jansson.h>
#include <stdbool.h>

/* json_loadb / json_load_file with the same flags and je, except: NULL
 * with *nomem true (any tree freed) when memory ran out during the load;
 * NULL with *nomem false is a syntax error that je describes. */
json_t *json_loadb_checked(const char *buf, size_t len, size_t flags, json_error_t *je, bool *nomem);
json_t *json_load_file_checked(const char *path, size_t flags, json_error_t *je, bool *nomem);

/* Building: jansson's setters (json_object_set_new, json_array_append_new)
 * drop what they could not allocate and carry on, and a constructor that
 * fails inside another's arguments can turn into a fallback (a token's
 * name spelled as bytes), so a tree is whole only if no allocation failed
 * while it was built.  json_build_begin() before building on this thread;
 * json_build_dump(root) then gives its compact text (malloc'd), or NULL
 * when root is NULL or an allocation failed meanwhile (never a tree with
 * a member missing); root is released either way. */
void json_build_begin(void);
char *json_build_dump(json_t *root);

/* json_dumps, except NULL (nothing half-written) when an allocation failed
 * during it: jansson 2.14 has been seen to return a different text then
 * (the fault injection test's tool-call prompt, tests/unit/faults). */
char *json_dumps_checked(const json_t *v, size_t flags);

#endif
