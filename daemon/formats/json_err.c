/* json_err.c - jansson's allocators, and loads and dumps that notice a
 * failed one (json_err.h). */
#include "formats/json_err.h"

#include <stdlib.h>

static _Thread_local bool alloc_failed;

static void *json_malloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		alloc_failed = true;
	return p;
}

static void json_free(void *p)
{
	free(p);
}

/* Before main, so that every tree jansson ever builds uses them (its
 * allocator must not change while it holds memory). */
__attribute__((constructor)) static void json_err_install(void)
{
	json_set_alloc_funcs(json_malloc, json_free);
}

static json_t *checked(json_t *root, const json_error_t *je, bool *nomem)
{
	*nomem = alloc_failed ||
		 (!root && (!je->text[0] || json_error_code(je) == json_error_out_of_memory));
	if (*nomem && root) {
		json_decref(root);
		root = NULL;
	}
	return root;
}

void json_build_begin(void)
{
	alloc_failed = false;
}

char *json_dumps_checked(const json_t *v, size_t flags)
{
	alloc_failed = false;
	char *s = json_dumps(v, flags);
	if (s && alloc_failed) {
		free(s);
		s = NULL;
	}
	return s;
}

char *json_build_dump(json_t *root)
{
	char *s = root && !alloc_failed ? json_dumps_checked(root, JSON_COMPACT) : NULL;
	json_decref(root);
	return s;
}

json_t *json_loadb_checked(const char *buf, size_t len, size_t flags, json_error_t *je, bool *nomem)
{
	alloc_failed = false;
	return checked(json_loadb(buf, len, flags, je), je, nomem);
}

json_t *json_load_file_checked(const char *path, size_t flags, json_error_t *je, bool *nomem)
{
	alloc_failed = false;
	return checked(json_load_file(path, flags, je), je, nomem);
}
