/* schema.c - JSON schema (a subset of draft 2020-12, OpenAI's structured
 * outputs subset and a little more) -> the grammar's node graph.
 *
 * Every keyword of a schema object is looked at: annotations are ignored,
 * the keywords below are compiled, and anything else is refused (-ENOTSUP
 * naming it), because a keyword we skipped could forbid what we generate. */
#include "formats/json_err.h"
#include "grammar/grammar_impl.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 60000
#define MAX_TEXT (64u << 20)
#define MAX_NEST 64                /* schema objects inside each other */

static const char *const annotations[] = {
	"title", "description", "default", "examples", "$schema", "$id", "$comment",
	"deprecated", "readOnly", "writeOnly", "$defs", "definitions", NULL,
};
static const char *const object_kw[] = { "properties", "required", "additionalProperties", NULL };
static const char *const array_kw[] = { "items", "minItems", "maxItems", "uniqueItems", NULL };
static const char *const string_kw[] = { "minLength", "maxLength", NULL };
static const char *const integer_kw[] = {
	"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL,
};
static const char *const other_kw[] = { "type", "enum", "const", "anyOf", "allOf", "$ref", NULL };

/* A $ref whose target is compiled after the main walk. */
struct pending_ref {
	uint32_t node;
	const char *ref;
};

/* A $ref target already compiled. */
struct memo {
	json_t *schema;
	uint32_t node;
};

struct ctx {
	struct grammar *g;
	json_t *doc;                   /* the whole schema ($ref "#..." starts here) */
	bool strict;
	struct grammar_error *e;
	struct pending_ref *refs;
	size_t n_refs, cap_refs;
	struct memo *memo;
	size_t n_memo, cap_memo;
	json_t *empty;                 /* {}: any value */
	int nest;
	char path[192];                /* JSON pointer of the schema being compiled */
};

static bool in_list(const char *const *l, const char *k)
{
	for (; *l; l++)
		if (!strcmp(*l, k))
			return true;
	return false;
}

static int fail(struct ctx *c, int rc, const char *kw, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct ctx *c, int rc, const char *kw, const char *fmt, ...)
{
	struct grammar_error *e = c->e;
	snprintf(e->keyword, sizeof(e->keyword), "%s", kw ? kw : "");
	snprintf(e->path, sizeof(e->path), "%s", c->path[0] ? c->path : "#");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- growing arrays (compile time only) ---- */

static int grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	uint32_t c = *cap ? *cap : 16;
	while (c < need) {
		if (c > UINT32_MAX / 2)
			return -ENOMEM;
		c *= 2;
	}
	void *t = realloc(*p, (size_t)c * elem);
	if (!t)
		return -ENOMEM;
	*p = t;
	*cap = c;
	return 0;
}

static int new_node(struct ctx *c, uint8_t kind, uint32_t *id)
{
	struct grammar *g = c->g;
	if (g->n_nodes >= MAX_NODES)
		return fail(c, -E2BIG, "", "the schema compiles to more than %d nodes", MAX_NODES);
	if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(*g->nodes)))
		return fail(c, -ENOMEM, "", "out of memory");
	memset(&g->nodes[g->n_nodes], 0, sizeof(*g->nodes));
	g->nodes[g->n_nodes].kind = kind;
	*id = g->n_nodes++;
	return 0;
}

static int add_text(struct ctx *c, const char *s, size_t len, uint32_t *off)
{
	struct grammar *g = c->g;
	if (len > MAX_TEXT || g->n_text + len > MAX_TEXT)
		return fail(c, -E2BIG, "", "the schema's names and values exceed %u bytes", MAX_TEXT);
	if (grow((void **)&g->text, &g->cap_text, g->n_text + (uint32_t)len + 1, 1))
		return fail(c, -ENOMEM, "", "out of memory");
	memcpy(g->text + g->n_text, s, len);
	*off = g->n_text;
	g->n_text += (uint32_t)len;
	return 0;
}

/* A JSON value's compact text (strings quoted and escaped as JSON). */
static int add_json_text(struct ctx *c, json_t *v, uint32_t *off, uint32_t *len)
{
	char *s = json_dumps_checked(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		return fail(c, -ENOMEM, "", "out of memory");
	size_t n = strlen(s);
	int rc = add_text(c, s, n, off);
	free(s);
	*len = (uint32_t)n;
	return rc;
}

/* ---- literals ---- */

/* Bytewise, shorter first on a common prefix (what narrowing by prefix
 * needs: a literal sorts before its extensions). */
static int lit_cmp(const void *a, const void *b, void *ctx)
{
	const struct grammar *g = ctx;
	const struct glit *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(g->text + x->off, g->text + y->off, n);
	if (r)
		return r;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* A literal node over values[n] (sorted, duplicates dropped). */
static int literal_node(struct ctx *c, json_t *const *values, size_t n, uint32_t *id)
{
	struct grammar *g = c->g;
	int rc;
	if ((rc = new_node(c, GN_LITERAL, id)))
		return rc;
	if (grow((void **)&g->lits, &g->cap_lits, g->n_lits + (uint32_t)n, sizeof(*g->lits)))
		return fail(c, -ENOMEM, "", "out of memory");
	uint32_t first = g->n_lits;
	for (size_t i = 0; i < n; i++) {
		struct glit *l = &g->lits[g->n_lits];
		if ((rc = add_json_text(c, values[i], &l->off, &l->len)))
			return rc;
		g->n_lits++;
	}
	struct glit *l = g->lits + first;
	qsort_r(l, n, sizeof(*l), lit_cmp, g);
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++)
		if (!k || l[k - 1].len != l[i].len ||
		    memcmp(g->text + l[k - 1].off, g->text + l[i].off, l[i].len))
			l[k++] = l[i];
	g->n_lits = first + k;
	g->nodes[*id].u.list.first = first;
	g->nodes[*id].u.list.n = k;
	return 0;
}

/* ---- the walk ---- */

static int compile(struct ctx *c, json_t *s, uint32_t *id);

/* Compile s found under member `seg` of the current schema. */
static int compile_at(struct ctx *c, json_t *s, const char *seg, uint32_t *id)
{
	size_t n = strlen(c->path);
	if (!n) {
		snprintf(c->path, sizeof(c->path), "#");
		n = 1;
	}
	snprintf(c->path + n, sizeof(c->path) - n, "/%s", seg);
	int rc = compile(c, s, id);
	if (!rc)
		c->path[n] = 0;
	return rc;
}

static int get_count(struct ctx *c, json_t *s, const char *kw, uint32_t *out)
{
	json_t *v = json_object_get(s, kw);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return fail(c, -EINVAL, kw, "'%s' must be a non-negative integer", kw);
	json_int_t x = json_integer_value(v);
	*out = x >= (json_int_t)GN_UNBOUNDED ? GN_UNBOUNDED - 1 : (uint32_t)x;
	return 0;
}

static int object_node(struct ctx *c, json_t *s, uint32_t *id)
{
	struct grammar *g = c->g;
	json_t *props = json_object_get(s, "properties");
	json_t *req = json_object_get(s, "required");
	json_t *add = json_object_get(s, "additionalProperties");
	int rc;
	if (props && !json_is_object(props))
		return fail(c, -EINVAL, "properties", "'properties' must be an object");
	if (req && !json_is_array(req))
		return fail(c, -EINVAL, "required", "'required' must be an array of strings");
	if (add && !json_is_boolean(add) && !json_is_object(add))
		return fail(c, -EINVAL, "additionalProperties", "'additionalProperties' must be a boolean or a schema");
	size_t n = props ? json_object_size(props) : 0;
	if (n > GM_MAX_PROPS)
		return fail(c, -E2BIG, "properties", "%zu properties; at most %d in one object", n, GM_MAX_PROPS);
	if (req && json_array_size(req) > GM_MAX_PROPS)
		return fail(c, -E2BIG, "required", "'required' lists %zu names; at most %d",
			    json_array_size(req), GM_MAX_PROPS);
	for (size_t i = 0; req && i < json_array_size(req); i++) {
		json_t *r = json_array_get(req, i);
		if (!json_is_string(r))
			return fail(c, -EINVAL, "required", "'required' must be an array of strings");
		if (!props || !json_object_get(props, json_string_value(r)))
			return fail(c, -ENOTSUP, "required",
				    "required property '%.60s' is not in 'properties' (only listed properties are generated)",
				    json_string_value(r));
	}
	if (c->strict) {
		if (!add || !json_is_false(add))
			return fail(c, -EINVAL, "additionalProperties",
				    "strict mode: 'additionalProperties' must be supplied and be false");
		if (!req || json_array_size(req) != n)
			return fail(c, -EINVAL, "required",
				    "strict mode: 'required' must list every key in 'properties'");
	}
	if (!props) {
		/* No properties: any object; its values follow a schema given
		 * as additionalProperties. */
		if ((rc = new_node(c, GN_MAP, id)))
			return rc;
		uint32_t v;
		if (add && json_is_object(add))
			rc = compile_at(c, add, "additionalProperties", &v);
		else
			rc = compile_at(c, c->empty, "additionalProperties", &v);
		if (rc)
			return rc;
		g->nodes[*id].u.map.value = v;
		return 0;
	}
	if ((rc = new_node(c, GN_OBJECT, id)))
		return rc;
	uint32_t first = g->n_props;
	if (grow((void **)&g->props, &g->cap_props, g->n_props + (uint32_t)n, sizeof(*g->props)))
		return fail(c, -ENOMEM, "", "out of memory");
	g->n_props += (uint32_t)n;
	g->nodes[*id].u.obj.first = first;
	g->nodes[*id].u.obj.n = (uint32_t)n;
	const char *k;
	json_t *v;
	uint32_t i = 0;
	json_object_foreach(props, k, v) {
		struct gprop p = { 0 };
		/* k comes from a parsed object, so it is valid UTF-8:
		 * NULL is out of memory. */
		json_t *name = json_string(k);
		if (!name)
			return fail(c, -ENOMEM, "", "out of memory");
		rc = add_json_text(c, name, &p.key_off, &p.key_len);
		json_decref(name);
		if (rc)
			return rc;
		for (size_t r = 0; req && r < json_array_size(req); r++)
			if (!strcmp(json_string_value(json_array_get(req, r)), k))
				p.required = true;
		char seg[96];
		snprintf(seg, sizeof(seg), "properties/%.80s", k);
		if ((rc = compile_at(c, v, seg, &p.node)))
			return rc;
		c->g->props[first + i++] = p;
	}
	return 0;
}

static int array_node(struct ctx *c, json_t *s, uint32_t *id)
{
	struct grammar *g = c->g;
	json_t *items = json_object_get(s, "items");
	json_t *uniq = json_object_get(s, "uniqueItems");
	uint32_t mn = 0, mx = GN_UNBOUNDED;
	int rc;
	if (uniq && !json_is_false(uniq))
		return fail(c, -ENOTSUP, "uniqueItems", "'uniqueItems' is not supported (only false)");
	if ((rc = get_count(c, s, "minItems", &mn)) || (rc = get_count(c, s, "maxItems", &mx)))
		return rc;
	if (mx < mn)
		return fail(c, -EINVAL, "maxItems", "'maxItems' %u is below 'minItems' %u", mx, mn);
	if (items && !json_is_object(items) && !json_is_boolean(items))
		return fail(c, -ENOTSUP, "items", "'items' must be one schema (tuples: prefixItems is not supported)");
	uint32_t it;
	if (items && json_is_false(items)) {
		if (mn > 0)
			return fail(c, -EINVAL, "items", "'items' false with 'minItems' %u", mn);
		mx = 0;
		rc = compile_at(c, c->empty, "items", &it);
	} else {
		rc = compile_at(c, items && json_is_object(items) ? items : c->empty, "items", &it);
	}
	if (rc)
		return rc;
	if ((rc = new_node(c, GN_ARRAY, id)))
		return rc;
	g->nodes[*id].u.arr.items = it;
	g->nodes[*id].u.arr.min = mn;
	g->nodes[*id].u.arr.max = mx;
	return 0;
}

static int string_node(struct ctx *c, json_t *s, uint32_t *id)
{
	uint32_t mn = 0, mx = GN_UNBOUNDED;
	int rc;
	if ((rc = get_count(c, s, "minLength", &mn)) || (rc = get_count(c, s, "maxLength", &mx)))
		return rc;
	if (mx < mn)
		return fail(c, -EINVAL, "maxLength", "'maxLength' %u is below 'minLength' %u", mx, mn);
	if ((rc = new_node(c, GN_STRING, id)))
		return rc;
	c->g->nodes[*id].u.str.min = mn;
	c->g->nodes[*id].u.str.max = mx;
	return 0;
}

static const char *const bound_kw[] = { "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum" };

/* bound_kw[i] of schema s into *x: 1, or 0 when absent, or the error for
 * a value that is not a number or lies beyond +-lim (`what` says whose). */
static int bound_value(struct ctx *c, json_t *s, int i, double lim, const char *what, double *x)
{
	json_t *v = json_object_get(s, bound_kw[i]);
	if (!v)
		return 0;
	if (!json_is_number(v))
		return fail(c, -EINVAL, bound_kw[i], "'%s' must be a number", bound_kw[i]);
	*x = json_number_value(v);
	if (!(fabs(*x) <= lim))
		return fail(c, -E2BIG, bound_kw[i], "'%s' %g %s", bound_kw[i], *x, what);
	return 1;
}

/* Keep the tighter of the bound so far and b (a lower one for i < 2). */
static void tighten(int i, int64_t b, bool *has_lo, int64_t *lo, bool *has_hi, int64_t *hi)
{
	if (i < 2) {
		if (!*has_lo || b > *lo)
			*lo = b;
		*has_lo = true;
	} else {
		if (!*has_hi || b < *hi)
			*hi = b;
		*has_hi = true;
	}
}

/* minimum & co. as integer bounds; has the schema any? */
static int int_bounds(struct ctx *c, json_t *s, bool *has_lo, int64_t *lo, bool *has_hi, int64_t *hi)
{
	for (int i = 0; i < 4; i++) {
		double x = 0;
		int rc = bound_value(c, s, i, 1e18, "is beyond +-1e18", &x);
		if (rc <= 0) {
			if (rc)
				return rc;
			continue;
		}
		int64_t b;
		if (i == 0)
			b = (int64_t)ceil(x);
		else if (i == 1)
			b = (int64_t)floor(x) + 1;
		else if (i == 2)
			b = (int64_t)floor(x);
		else
			b = (int64_t)ceil(x) - 1;
		tighten(i, b, has_lo, lo, has_hi, hi);
	}
	if (*has_lo && *has_hi && *lo > *hi)
		return fail(c, -EINVAL, "minimum", "no integer lies within the bounds");
	return 0;
}

/* A number's bounds as multiples of 1e-6 (GN_NUM_SCALE), exact for the
 * texts we generate: the smallest (largest) multiple whose decimal text
 * parses to a double within the bound.  (double)S / 1e6 is that parse for
 * |S| < 2^53, which bounds of at most 1e9 keep. */
static int num_bounds(struct ctx *c, json_t *s, bool *has_lo, int64_t *lo, bool *has_hi, int64_t *hi)
{
	const double sc = (double)GN_NUM_SCALE;
	for (int i = 0; i < 4; i++) {
		double x = 0;
		int rc = bound_value(c, s, i, 1e9, "on a number is beyond +-1e9", &x);
		if (rc <= 0) {
			if (rc)
				return rc;
			continue;
		}
		int64_t b = (int64_t)llround(x * sc);
		if (i < 2) {           /* the smallest S with S/1e6 >= x (> x) */
			bool ex = i == 1;
			while (ex ? (double)(b - 1) / sc > x : (double)(b - 1) / sc >= x)
				b--;
			while (ex ? (double)b / sc <= x : (double)b / sc < x)
				b++;
		} else {               /* the largest S with S/1e6 <= x (< x) */
			bool ex = i == 3;
			while (ex ? (double)(b + 1) / sc < x : (double)(b + 1) / sc <= x)
				b++;
			while (ex ? (double)b / sc >= x : (double)b / sc > x)
				b--;
		}
		tighten(i, b, has_lo, lo, has_hi, hi);
	}
	if (*has_lo && *has_hi && *lo > *hi)
		return fail(c, -EINVAL, "minimum", "no number with 6 decimals at most lies within the bounds");
	return 0;
}

/* An integer or number node with the bounds `bounds` reads from s
 * (int_bounds, num_bounds). */
static int bounded_node(struct ctx *c, json_t *s, uint8_t kind,
			int (*bounds)(struct ctx *, json_t *, bool *, int64_t *, bool *, int64_t *),
			uint32_t *id)
{
	bool has_lo = false, has_hi = false;
	int64_t lo = 0, hi = 0;
	int rc;
	if ((rc = bounds(c, s, &has_lo, &lo, &has_hi, &hi)) || (rc = new_node(c, kind, id)))
		return rc;
	struct gnode *n = &c->g->nodes[*id];
	n->u.num.has_lo = has_lo;
	n->u.num.has_hi = has_hi;
	n->u.num.lo = lo;
	n->u.num.hi = hi;
	return 0;
}

static bool type_known(const char *t)
{
	static const char *const types[] = {
		"object", "array", "string", "integer", "number", "boolean", "null", NULL,
	};
	return in_list(types, t);
}

/* Does value v have JSON type t? */
static bool has_type(json_t *v, const char *t)
{
	if (!strcmp(t, "object"))
		return json_is_object(v);
	if (!strcmp(t, "array"))
		return json_is_array(v);
	if (!strcmp(t, "string"))
		return json_is_string(v);
	if (!strcmp(t, "integer"))
		return json_is_integer(v) || (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)));
	if (!strcmp(t, "number"))
		return json_is_number(v);
	if (!strcmp(t, "boolean"))
		return json_is_boolean(v);
	return json_is_null(v);
}

static int type_node(struct ctx *c, json_t *s, const char *t, uint32_t *id)
{
	if (!strcmp(t, "object"))
		return object_node(c, s, id);
	if (!strcmp(t, "array"))
		return array_node(c, s, id);
	if (!strcmp(t, "string"))
		return string_node(c, s, id);
	if (!strcmp(t, "integer"))
		return bounded_node(c, s, GN_INTEGER, int_bounds, id);
	if (!strcmp(t, "number"))
		return bounded_node(c, s, GN_NUMBER, num_bounds, id);
	if (!strcmp(t, "boolean")) {
		json_t *v[2] = { json_false(), json_true() };
		return literal_node(c, v, 2, id);
	}
	json_t *v = json_null();
	return literal_node(c, &v, 1, id);
}

/* Any JSON value: anyOf [object, array, string, number, true/false/null]. */
static int any_node(struct ctx *c, uint32_t *id)
{
	struct grammar *g = c->g;
	uint32_t any = 0, map = 0, arr = 0, str = 0, num = 0, lit = 0;
	int rc;
	if ((rc = new_node(c, GN_ANYOF, &any)) || (rc = new_node(c, GN_MAP, &map)) ||
	    (rc = new_node(c, GN_ARRAY, &arr)) || (rc = new_node(c, GN_STRING, &str)) ||
	    (rc = new_node(c, GN_NUMBER, &num)))
		return rc;
	json_t *v[3] = { json_false(), json_true(), json_null() };
	if ((rc = literal_node(c, v, 3, &lit)))
		return rc;
	g->nodes[map].u.map.value = any;
	g->nodes[arr].u.arr = (typeof(g->nodes[arr].u.arr)){ any, 0, GN_UNBOUNDED };
	g->nodes[str].u.str.max = GN_UNBOUNDED;
	if (grow((void **)&g->ids, &g->cap_ids, g->n_ids + 5, sizeof(*g->ids)))
		return fail(c, -ENOMEM, "", "out of memory");
	g->nodes[any].u.list.first = g->n_ids;
	g->nodes[any].u.list.n = 5;
	uint32_t alts[5] = { map, arr, str, num, lit };
	memcpy(g->ids + g->n_ids, alts, sizeof(alts));
	g->n_ids += 5;
	*id = any;
	return 0;
}

/* An anyOf node over already compiled alternatives. */
static int anyof_node(struct ctx *c, const uint32_t *alts, uint32_t n, uint32_t *id)
{
	struct grammar *g = c->g;
	int rc;
	if (n == 1) {
		*id = alts[0];
		return 0;
	}
	if ((rc = new_node(c, GN_ANYOF, id)))
		return rc;
	if (grow((void **)&g->ids, &g->cap_ids, g->n_ids + n, sizeof(*g->ids)))
		return fail(c, -ENOMEM, "", "out of memory");
	g->nodes[*id].u.list.first = g->n_ids;
	g->nodes[*id].u.list.n = n;
	memcpy(g->ids + g->n_ids, alts, sizeof(*alts) * n);
	g->n_ids += n;
	return 0;
}

/* Members of s other than annotations and `allowed`: the first one, or NULL. */
static const char *stray(json_t *s, const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach(s, k, v)
		if (!in_list(annotations, k) && !(allowed && in_list(allowed, k)))
			return k;
	return NULL;
}

static int enum_node(struct ctx *c, json_t *s, uint32_t *id)
{
	static const char *const allowed[] = { "enum", "const", "type", NULL };
	const char *k = stray(s, allowed);
	if (k)
		return fail(c, -ENOTSUP, k, "'%s' beside 'enum'/'const' is not supported", k);
	json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
	json_t *ty = json_object_get(s, "type");
	if (en && (!json_is_array(en) || !json_array_size(en)))
		return fail(c, -EINVAL, "enum", "'enum' must be a non-empty array");
	size_t n = cn ? 1 : json_array_size(en);
	json_t **vals = malloc(sizeof(*vals) * n);
	if (!vals)
		return fail(c, -ENOMEM, "", "out of memory");
	size_t k2 = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *v = cn ? cn : json_array_get(en, i);
		if (cn && en) {
			/* both: the const must be one of the enum's */
			bool found = false;
			for (size_t j = 0; j < json_array_size(en); j++)
				found |= json_equal(v, json_array_get(en, j));
			if (!found)
				continue;
		}
		bool ok = !ty;
		if (ty && json_is_string(ty))
			ok = has_type(v, json_string_value(ty));
		for (size_t j = 0; ty && json_is_array(ty) && j < json_array_size(ty); j++)
			if (json_is_string(json_array_get(ty, j)))
				ok |= has_type(v, json_string_value(json_array_get(ty, j)));
		if (ok)
			vals[k2++] = v;
	}
	int rc = k2 ? literal_node(c, vals, k2, id)
		    : fail(c, -EINVAL, cn ? "const" : "enum", "no value of '%s' satisfies the schema",
			   cn ? "const" : "enum");
	free(vals);
	return rc;
}

static int ref_node(struct ctx *c, json_t *s, uint32_t *id)
{
	const char *k = stray(s, (const char *const[]){ "$ref", NULL });
	if (k)
		return fail(c, -ENOTSUP, k, "'%s' beside '$ref' is not supported", k);
	json_t *r = json_object_get(s, "$ref");
	if (!json_is_string(r) || json_string_value(r)[0] != '#')
		return fail(c, -ENOTSUP, "$ref", "only local '$ref' (\"#/...\") is supported");
	int rc = new_node(c, GN_REF, id);
	if (rc)
		return rc;
	c->g->nodes[*id].u.ref.target = UINT32_MAX;
	if (c->n_refs == c->cap_refs) {
		size_t cap = c->cap_refs ? c->cap_refs * 2 : 8;
		struct pending_ref *t = realloc(c->refs, cap * sizeof(*t));
		if (!t)
			return fail(c, -ENOMEM, "", "out of memory");
		c->refs = t;
		c->cap_refs = cap;
	}
	c->refs[c->n_refs++] = (struct pending_ref){ *id, json_string_value(r) };
	return 0;
}

static int combo_node(struct ctx *c, json_t *s, const char *kw, uint32_t *id)
{
	const char *k = stray(s, (const char *const[]){ kw, NULL });
	if (k)
		return fail(c, -ENOTSUP, k, "'%s' beside '%s' is not supported", k, kw);
	json_t *l = json_object_get(s, kw);
	if (!json_is_array(l) || !json_array_size(l))
		return fail(c, -EINVAL, kw, "'%s' must be a non-empty array of schemas", kw);
	size_t n = json_array_size(l);
	if (!strcmp(kw, "allOf") && n > 1)
		return fail(c, -ENOTSUP, kw, "'allOf' is supported with one schema only");
	if (n > 64)
		return fail(c, -E2BIG, kw, "'%s' has %zu schemas; at most 64", kw, n);
	uint32_t alts[64];
	for (size_t i = 0; i < n; i++) {
		char seg[32];
		snprintf(seg, sizeof(seg), "%s/%zu", kw, i);
		int rc = compile_at(c, json_array_get(l, i), seg, &alts[i]);
		if (rc)
			return rc;
	}
	return anyof_node(c, alts, (uint32_t)n, id);
}

static int compile(struct ctx *c, json_t *s, uint32_t *id)
{
	if (++c->nest > MAX_NEST) {
		c->nest--;
		return fail(c, -E2BIG, "", "schemas nested deeper than %d", MAX_NEST);
	}
	int rc = 0;
	if (json_is_true(s)) {
		rc = any_node(c, id);
		goto out;
	}
	if (json_is_false(s)) {
		rc = fail(c, -EINVAL, "", "the schema false matches nothing");
		goto out;
	}
	if (!json_is_object(s)) {
		rc = fail(c, -EINVAL, "", "a schema must be an object or a boolean");
		goto out;
	}
	/* Every keyword is one we know; the first other one is refused. */
	const char *k;
	json_t *v;
	json_object_foreach(s, k, v) {
		if (in_list(annotations, k) || in_list(other_kw, k) || in_list(object_kw, k) ||
		    in_list(array_kw, k) || in_list(string_kw, k) || in_list(integer_kw, k))
			continue;
		rc = fail(c, -ENOTSUP, k, "JSON schema keyword '%.60s' is not supported", k);
		goto out;
	}
	json_t *defs = json_object_get(s, "$defs");
	if (defs && !json_is_object(defs)) {
		rc = fail(c, -EINVAL, "$defs", "'$defs' must be an object");
		goto out;
	}
	if (json_object_get(s, "$ref")) {
		rc = ref_node(c, s, id);
		goto out;
	}
	if (json_object_get(s, "enum") || json_object_get(s, "const")) {
		rc = enum_node(c, s, id);
		goto out;
	}
	if (json_object_get(s, "anyOf")) {
		rc = combo_node(c, s, "anyOf", id);
		goto out;
	}
	if (json_object_get(s, "allOf")) {
		rc = combo_node(c, s, "allOf", id);
		goto out;
	}
	/* The types: "type", or what the keywords imply, or any value. */
	const char *types[8];
	int n = 0;
	json_t *ty = json_object_get(s, "type");
	if (ty) {
		json_t *one[1] = { ty };
		size_t m = json_is_array(ty) ? json_array_size(ty) : 1;
		if (!m || m > 7 || (!json_is_string(ty) && !json_is_array(ty))) {
			rc = fail(c, -EINVAL, "type", "'type' must be a type name or an array of them");
			goto out;
		}
		for (size_t i = 0; i < m; i++) {
			json_t *t = json_is_array(ty) ? json_array_get(ty, i) : one[0];
			if (!json_is_string(t) || !type_known(json_string_value(t))) {
				rc = fail(c, -EINVAL, "type", "unknown type in 'type'");
				goto out;
			}
			types[n++] = json_string_value(t);
		}
	} else {
		json_object_foreach(s, k, v) {
			const char *t = in_list(object_kw, k) ? "object" : in_list(array_kw, k) ? "array" :
					in_list(string_kw, k) ? "string" : in_list(integer_kw, k) ? "number" : NULL;
			bool seen = false;
			for (int i = 0; t && i < n; i++)
				seen |= !strcmp(types[i], t);
			if (t && !seen)
				types[n++] = t;
		}
		if (!n) {
			rc = any_node(c, id);
			goto out;
		}
	}
	/* Keywords of a type not listed do not apply (JSON schema's rule);
	 * with no type they chose the types above. */
	uint32_t alts[8];
	for (int i = 0; i < n; i++)
		if ((rc = type_node(c, s, types[i], &alts[i])))
			goto out;
	rc = anyof_node(c, alts, (uint32_t)n, id);
out:
	c->nest--;
	return rc;
}

/* Follow a JSON pointer ("#/a/b", ~0 and ~1 escapes) from the document. */
static json_t *resolve(json_t *doc, const char *ref)
{
	if (ref[0] != '#')
		return NULL;
	const char *p = ref + 1;
	json_t *cur = doc;
	while (*p) {
		if (*p != '/')
			return NULL;
		p++;
		char seg[256];
		size_t n = 0;
		while (*p && *p != '/') {
			char ch = *p++;
			if (ch == '~' && (*p == '0' || *p == '1'))
				ch = *p++ == '0' ? '~' : '/';
			if (n + 1 >= sizeof(seg))
				return NULL;
			seg[n++] = ch;
		}
		seg[n] = 0;
		if (json_is_object(cur)) {
			cur = json_object_get(cur, seg);
		} else if (json_is_array(cur)) {
			char *end;
			unsigned long i = strtoul(seg, &end, 10);
			cur = *end || !n ? NULL : json_array_get(cur, i);
		} else {
			return NULL;
		}
		if (!cur)
			return NULL;
	}
	return cur;
}

static int resolve_refs(struct ctx *c)
{
	struct grammar *g = c->g;
	for (size_t i = 0; i < c->n_refs; i++) {
		struct pending_ref r = c->refs[i];
		json_t *t = resolve(c->doc, r.ref);
		snprintf(c->path, sizeof(c->path), "%.150s", r.ref);
		if (!t)
			return fail(c, -EINVAL, "$ref", "'$ref' \"%.100s\" points at nothing", r.ref);
		uint32_t id = UINT32_MAX;
		for (size_t j = 0; j < c->n_memo; j++)
			if (c->memo[j].schema == t)
				id = c->memo[j].node;
		if (id == UINT32_MAX) {
			int rc = compile(c, t, &id);
			if (rc)
				return rc;
			if (c->n_memo == c->cap_memo) {
				size_t cap = c->cap_memo ? c->cap_memo * 2 : 8;
				struct memo *m = realloc(c->memo, cap * sizeof(*m));
				if (!m)
					return fail(c, -ENOMEM, "", "out of memory");
				c->memo = m;
				c->cap_memo = cap;
			}
			c->memo[c->n_memo++] = (struct memo){ t, id };
		}
		g->nodes[r.node].u.ref.target = id;
	}
	/* A cycle of references that never reaches a value. */
	for (uint32_t i = 0; i < g->n_nodes; i++) {
		uint32_t n = i, steps = 0;
		while (g->nodes[n].kind == GN_REF && steps++ <= g->n_nodes)
			n = g->nodes[n].u.ref.target;
		if (g->nodes[n].kind == GN_REF)
			return fail(c, -EINVAL, "$ref", "'$ref' cycle that never reaches a schema");
	}
	return 0;
}

static int grammar_alloc(struct grammar **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

int grammar_compile_schema(struct grammar **out, json_t *schema, bool strict, struct grammar_error *e)
{
	memset(e, 0, sizeof(*e));
	struct ctx c = { .doc = schema, .strict = strict, .e = e, .empty = json_object() };
	if (!c.empty || grammar_alloc(&c.g)) {
		json_decref(c.empty);
		return fail(&c, -ENOMEM, "", "out of memory");
	}
	snprintf(c.path, sizeof(c.path), "#");
	uint32_t fs;
	int rc = compile(&c, schema, &c.g->root);
	if (!rc)
		rc = resolve_refs(&c);
	if (!rc && !(rc = new_node(&c, GN_STRING, &fs))) {
		c.g->nodes[fs].u.str.max = GN_UNBOUNDED;
		c.g->free_string = fs;
	}
	const char *why = NULL;
	if (!rc && (rc = grammar_measure(c.g, &why))) {
		snprintf(c.path, sizeof(c.path), "#");
		rc = fail(&c, rc, "", "%s", why);
	}
	free(c.refs);
	free(c.memo);
	json_decref(c.empty);
	if (rc) {
		grammar_free(c.g);
		return rc;
	}
	*out = c.g;
	return 0;
}

int grammar_compile_any_object(struct grammar **out, struct grammar_error *e)
{
	json_t *s = json_pack("{s:s}", "type", "object");
	if (!s) {
		memset(e, 0, sizeof(*e));
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		return -ENOMEM;
	}
	int rc = grammar_compile_schema(out, s, false, e);
	json_decref(s);
	return rc;
}

uint32_t grammar_min_len(const struct grammar *g)
{
	if (!g->n_alt)
		return g->min_len[g->root] + g->n_pre + g->n_post;
	uint32_t best = UINT32_MAX;
	for (uint32_t k = 0; k < g->n_alt; k++) {
		uint64_t l = (uint64_t)g->alt_off[k + 1] - g->alt_off[k] +
			     g->min_len[g->ids[g->nodes[g->root].u.list.first + k]] + g->n_post;
		if (l < best)
			best = (uint32_t)l;
	}
	return best;
}

int grammar_set_trigger(struct grammar *g, const char *text, size_t n)
{
	if (!n)
		return -EINVAL;
	if (n > GM_MAX_FRAME)
		return -E2BIG;
	memcpy(g->trig, text, n);
	g->n_trig = (uint32_t)n;
	return 0;
}

int grammar_set_frame_alts(struct grammar *g, const char *const *pre, int n, const char *post,
			   size_t n_post)
{
	if (n < 2 || n > GM_MAX_ALTS || n_post > GM_MAX_FRAME)
		return n < 2 ? -EINVAL : -E2BIG;
	const struct gnode *r = &g->nodes[g->root];
	if (r->kind != GN_ANYOF || r->u.list.n != (uint32_t)n)
		return -EINVAL;
	size_t total = 0;
	for (int k = 0; k < n; k++) {
		size_t l = strlen(pre[k]);
		if (l == 0 || l > GM_MAX_FRAME)
			return l ? -E2BIG : -EINVAL;
		total += l;
	}
	char *t = malloc(total);
	if (!t)
		return -ENOMEM;
	size_t o = 0;
	for (int k = 0; k < n; k++) {
		g->alt_off[k] = (uint32_t)o;
		memcpy(t + o, pre[k], strlen(pre[k]));
		o += strlen(pre[k]);
	}
	g->alt_off[n] = (uint32_t)o;
	free(g->alt_text);
	g->alt_text = t;
	g->n_alt = (uint32_t)n;
	g->n_pre = 0;
	memcpy(g->post, post, n_post);
	g->n_post = (uint32_t)n_post;
	return 0;
}

int grammar_set_frame(struct grammar *g, const char *pre, size_t n_pre, const char *post,
		      size_t n_post)
{
	if (n_pre > GM_MAX_FRAME || n_post > GM_MAX_FRAME)
		return -E2BIG;
	memcpy(g->pre, pre, n_pre);
	memcpy(g->post, post, n_post);
	g->n_pre = (uint32_t)n_pre;
	g->n_post = (uint32_t)n_post;
	return 0;
}

struct grammar *grammar_free(struct grammar *g)
{
	if (!g)
		return NULL;
	free(g->nodes);
	free(g->props);
	free(g->ids);
	free(g->lits);
	free(g->text);
	free(g->min_depth);
	free(g->min_len);
	free(g->alt_text);
	free(g);
	return NULL;
}
