/* bench_expert_replay - replay an expert trace (docs/expert-trace.md)
 * against every eviction policy and Belady's optimum.
 *
 *   bench_expert_replay TRACE [--slots N[,N...]] [--json]
 *
 * One pool of N expert units for all layers (the RAM tier's budget is one
 * pool).  Each `r` record's experts are acquired in order; a miss loads the
 * unit, evicting a victim chosen by weights/wpolicy.c's wpolicy_pick, the
 * store's own choice, among all resident units (experts run one at a time,
 * so only the unit being loaded is in use).  Distances: `predictive` takes the layer-order distance to the
 * unit's layer (what the store's plan predictor knows about an expert),
 * `belady` the true distance to the unit's next use in the trace.
 * Prints misses, hit rate and bytes read per token against the floor, and
 * the predictor's precision and recall when the trace has `p` records.
 * Timings play no part: everything is counted. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weights/wpolicy.h"

#define MAX_LAYERS 1024
#define MAX_EXPERTS 4096
#define LINE_MAX_BYTES (64 * 1024)
#define NEVER INT64_MAX

struct access {
	int unit;       /* layer * n_expert + expert */
	int layer;
};

struct trace {
	int n_layer, n_expert, top_k;
	uint64_t expert_bytes;
	struct access *acc;
	int64_t n_acc, cap_acc;
	int64_t n_records, n_tokens;
	/* predictor scoring, per layer */
	uint64_t *pred_hit, *pred_n, *chosen_n, *chosen_pred_n;
	bool has_pred;
};

static int fail(const char *path, long line, const char *why)
{
	fprintf(stderr, "bench_expert_replay: %s:%ld: %s\n", path, line, why);
	return -EINVAL;
}

/* Parse up to max non-negative integers below lim from s; -1 on a bad field. */
static int parse_ids(char *s, int *out, int max, long lim)
{
	int n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(s, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
		char *end;
		errno = 0;
		long v = strtol(tok, &end, 10);
		if (errno || *end || v < 0 || v >= lim || n == max)
			return -1;
		out[n++] = (int)v;
	}
	return n;
}

static int push(struct trace *t, int unit, int layer)
{
	if (t->n_acc == t->cap_acc) {
		int64_t cap = t->cap_acc ? t->cap_acc * 2 : 4096;
		struct access *a = realloc(t->acc, sizeof(*a) * (size_t)cap);
		if (!a)
			return -ENOMEM;
		t->acc = a;
		t->cap_acc = cap;
	}
	t->acc[t->n_acc++] = (struct access){ unit, layer };
	return 0;
}

static int read_trace(const char *path, struct trace *t)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "bench_expert_replay: cannot open %s: %s\n", path, strerror(errno));
		return -errno;
	}
	char *line = malloc(LINE_MAX_BYTES);
	int *ids = malloc(sizeof(int) * (MAX_EXPERTS + 3));
	int *pred = malloc(sizeof(int) * MAX_EXPERTS), n_pred = -1, pred_key[3] = { -1, -1, -1 };
	int rc = line && ids && pred ? 0 : -ENOMEM;
	long no = 0;
	int stage = 0;  /* 0: magic, 1: shape, 2: records */
	int64_t last_seq = -1, last_pos = -1;
	while (!rc && fgets(line, LINE_MAX_BYTES, f)) {
		no++;
		if (!strchr(line, '\n') && !feof(f)) {
			rc = fail(path, no, "line longer than 64 KiB");
			break;
		}
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '#' || *s == '\n' || *s == '\r' || !*s)
			continue;
		if (stage == 0) {
			if (strncmp(s, "smoke-expert-trace 1", 20) || (s[20] && s[20] != '\n' && s[20] != '\r'))
				rc = fail(path, no, "not an expert trace of version 1 (first line 'smoke-expert-trace 1')");
			stage = 1;
			continue;
		}
		if (stage == 1) {
			unsigned long long eb;
			if (sscanf(s, "layers %d experts %d top_k %d expert_bytes %llu", &t->n_layer,
				   &t->n_expert, &t->top_k, &eb) != 4 || t->n_layer < 1 ||
			    t->n_layer > MAX_LAYERS || t->n_expert < 1 || t->n_expert > MAX_EXPERTS ||
			    t->top_k < 1 || t->top_k > t->n_expert || eb == 0 || eb > (1ull << 40)) {
				rc = fail(path, no, "expected 'layers L experts E top_k K expert_bytes B' "
					  "(1 <= L <= 1024, 1 <= K <= E <= 4096, 0 < B <= 2^40)");
				break;
			}
			t->expert_bytes = eb;
			t->pred_hit = calloc((size_t)t->n_layer, sizeof(uint64_t));
			t->pred_n = calloc((size_t)t->n_layer, sizeof(uint64_t));
			t->chosen_n = calloc((size_t)t->n_layer, sizeof(uint64_t));
			t->chosen_pred_n = calloc((size_t)t->n_layer, sizeof(uint64_t));
			if (!t->pred_hit || !t->pred_n || !t->chosen_n || !t->chosen_pred_n)
				rc = -ENOMEM;
			stage = 2;
			continue;
		}
		const char kind = s[0];
		if ((kind != 'r' && kind != 'p') || (s[1] != ' ' && s[1] != '\t')) {
			rc = fail(path, no, "a record starts with 'r' or 'p'");
			break;
		}
		int n = parse_ids(s + 2, ids, MAX_EXPERTS + 3, 1L << 31);
		if (n < 3) {
			rc = fail(path, no, "expected SEQ POS LAYER and expert ids (non-negative integers)");
			break;
		}
		const int seq = ids[0], pos = ids[1], layer = ids[2], *ex = ids + 3, k = n - 3;
		if (layer >= t->n_layer) {
			rc = fail(path, no, "layer out of range");
			break;
		}
		bool bad = false;
		for (int i = 0; i < k && !bad; i++) {
			bad = ex[i] >= t->n_expert;
			for (int j = 0; j < i && !bad; j++)
				bad = ex[j] == ex[i];
		}
		if (bad) {
			rc = fail(path, no, "expert ids must be distinct and below 'experts'");
			break;
		}
		if (kind == 'p') {
			memcpy(pred, ex, sizeof(int) * (size_t)k);
			n_pred = k;
			pred_key[0] = seq, pred_key[1] = pos, pred_key[2] = layer;
			t->has_pred = true;
			continue;
		}
		if (k != t->top_k) {
			rc = fail(path, no, "an 'r' record lists top_k experts");
			break;
		}
		if (seq != last_seq || pos != last_pos) {
			/* a new token whenever (seq, pos) changes at layer 0 */
			if (layer == 0)
				t->n_tokens++;
			last_seq = seq, last_pos = pos;
		}
		t->chosen_n[layer] += (uint64_t)k;
		if (n_pred >= 0 && pred_key[0] == seq && pred_key[1] == pos && pred_key[2] == layer) {
			t->pred_n[layer] += (uint64_t)n_pred;
			t->chosen_pred_n[layer] += (uint64_t)k;
			for (int i = 0; i < n_pred; i++)
				for (int j = 0; j < k; j++)
					t->pred_hit[layer] += pred[i] == ex[j];
		}
		n_pred = -1;
		for (int i = 0; i < k && !rc; i++)
			rc = push(t, layer * t->n_expert + ex[i], layer);
		t->n_records++;
	}
	if (!rc && ferror(f))
		rc = fail(path, no, strerror(errno));
	if (!rc && stage < 2)
		rc = fail(path, no, "no shape line: the trace is empty");
	fclose(f);
	free(line);
	free(ids);
	free(pred);
	return rc;
}

enum { POL_BELADY = WPOLICY_PREDICTIVE + 1, N_POL };

static const char *pol_name(int p)
{
	return p == POL_BELADY ? "belady" : wpolicy_name((enum wpolicy)p);
}

struct result {
	uint64_t misses, hits;
};

/* One replay of the whole trace with `slots` units under policy p. */
static int replay(const struct trace *t, const int64_t *next_use, int slots, int p,
		  struct result *r)
{
	const int n_units = t->n_layer * t->n_expert;
	/* per unit: resident?, last use, uses, load sequence, index of its last access */
	int *slot_of = malloc(sizeof(int) * (size_t)n_units);
	int *res = malloc(sizeof(int) * (size_t)slots);          /* resident units */
	struct wpolicy_cand *c = malloc(sizeof(*c) * (size_t)slots);
	int *cidx = malloc(sizeof(int) * (size_t)slots);
	uint64_t *last = calloc((size_t)n_units, sizeof(uint64_t));
	uint64_t *uses = calloc((size_t)n_units, sizeof(uint64_t));
	uint64_t *loaded = calloc((size_t)n_units, sizeof(uint64_t));
	int64_t *last_acc = malloc(sizeof(int64_t) * (size_t)n_units);
	if (!slot_of || !res || !c || !cidx || !last || !uses || !loaded || !last_acc) {
		free(slot_of), free(res), free(c), free(cidx), free(last), free(uses), free(loaded), free(last_acc);
		return -ENOMEM;
	}
	for (int u = 0; u < n_units; u++)
		slot_of[u] = -1;
	int n_res = 0;
	uint64_t clock = 0, seq = 0;
	memset(r, 0, sizeof(*r));
	for (int64_t i = 0; i < t->n_acc; i++) {
		const struct access *a = &t->acc[i];
		clock++;
		if (slot_of[a->unit] >= 0) {
			r->hits++;
		} else {
			r->misses++;
			int s;
			if (n_res < slots) {
				s = n_res++;
			} else {
				/* candidates: every resident unit (the acquire in
				 * progress is the only one in use: experts are run one
				 * at a time) */
				int n = 0;
				for (int j = 0; j < n_res; j++) {
					const int u = res[j];
					int dist;
					if (p == POL_BELADY) {
						const int64_t nu = next_use[last_acc[u]];
						dist = nu == NEVER || nu - i >= WPOLICY_FAR ? WPOLICY_FAR : (int)(nu - i);
					} else {
						const int ul = u / t->n_expert;
						dist = ((ul - a->layer) % t->n_layer + t->n_layer) % t->n_layer;
						if (dist == 0)
							dist = t->n_layer; /* this layer again: next token */
					}
					c[n] = (struct wpolicy_cand){ .last_use = last[u], .uses = uses[u],
								      .load_seq = loaded[u], .dist = dist };
					cidx[n++] = j;
				}
				const enum wpolicy wp = p == POL_BELADY ? WPOLICY_PREDICTIVE : (enum wpolicy)p;
				s = cidx[wpolicy_pick(wp, c, n)];
				slot_of[res[s]] = -1;
			}
			res[s] = a->unit;
			slot_of[a->unit] = s;
			uses[a->unit] = 0;
			loaded[a->unit] = ++seq;
		}
		last[a->unit] = clock;
		uses[a->unit]++;
		last_acc[a->unit] = i;
	}
	free(slot_of), free(res), free(c), free(cidx), free(last), free(uses), free(loaded), free(last_acc);
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *slots_arg = NULL;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--slots") && i + 1 < argc)
			slots_arg = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			fprintf(stderr, "usage: bench_expert_replay TRACE [--slots N[,N...]] [--json]\n");
			return 2;
		}
	}
	if (!path) {
		fprintf(stderr, "usage: bench_expert_replay TRACE [--slots N[,N...]] [--json]\n");
		return 2;
	}
	struct trace t = { 0 };
	int rc = read_trace(path, &t);
	if (rc)
		return 1;
	/* next_use[i]: the index of the next access to the same unit */
	const int n_units = t.n_layer * t.n_expert;
	int64_t *next_use = malloc(sizeof(int64_t) * (size_t)(t.n_acc ? t.n_acc : 1));
	int64_t *seen = malloc(sizeof(int64_t) * (size_t)n_units);
	if (!next_use || !seen)
		return 1;
	for (int u = 0; u < n_units; u++)
		seen[u] = NEVER;
	for (int64_t i = t.n_acc - 1; i >= 0; i--) {
		next_use[i] = seen[t.acc[i].unit];
		seen[t.acc[i].unit] = i;
	}
	int slots[64], n_slots = 0;
	if (slots_arg) {
		char *dup = strdup(slots_arg), *save = NULL;
		for (char *tok = strtok_r(dup, ",", &save); tok && n_slots < 64; tok = strtok_r(NULL, ",", &save)) {
			char *end;
			long v = strtol(tok, &end, 10);
			if (*end || v < 1 || v > n_units) {
				fprintf(stderr, "bench_expert_replay: --slots %s: each must be 1..%d\n", tok, n_units);
				return 2;
			}
			slots[n_slots++] = (int)v;
		}
		free(dup);
	} else {
		/* a third of the experts, as the benchmark's RAM budget */
		slots[n_slots++] = n_units / 3 > 0 ? n_units / 3 : 1;
	}
	const double floor_bytes = (double)t.top_k * (double)t.expert_bytes * t.n_layer;
	const double tokens = t.n_tokens > 0 ? (double)t.n_tokens : 1.0;
	if (json)
		printf("{\"layers\": %d, \"experts\": %d, \"top_k\": %d, \"expert_bytes\": %llu, "
		       "\"records\": %lld, \"tokens\": %lld, \"floor_bytes_per_token\": %.0f, \"runs\": [",
		       t.n_layer, t.n_expert, t.top_k, (unsigned long long)t.expert_bytes,
		       (long long)t.n_records, (long long)t.n_tokens, floor_bytes);
	else
		printf("trace %s: %d layers x %d experts, top-%d, %llu bytes an expert; %lld records, %lld tokens; "
		       "floor %.1f MiB read per token\n", path, t.n_layer, t.n_expert, t.top_k,
		       (unsigned long long)t.expert_bytes, (long long)t.n_records, (long long)t.n_tokens,
		       floor_bytes / 1048576.0);
	bool first = true;
	for (int si = 0; si < n_slots; si++) {
		if (!json)
			printf("\n%d slots (%.1f%% of the experts):\n  %-10s %12s %9s %14s %12s\n", slots[si],
			       100.0 * slots[si] / n_units, "policy", "misses", "hit rate", "MiB/token", "x floor");
		for (int p = 0; p < N_POL; p++) {
			struct result r;
			if (replay(&t, next_use, slots[si], p, &r))
				return 1;
			const double total = (double)(r.hits + r.misses);
			const double per_token = (double)r.misses * (double)t.expert_bytes / tokens;
			if (json) {
				printf("%s{\"slots\": %d, \"policy\": \"%s\", \"misses\": %llu, \"hits\": %llu}",
				       first ? "" : ", ", slots[si], pol_name(p), (unsigned long long)r.misses,
				       (unsigned long long)r.hits);
				first = false;
			} else {
				printf("  %-10s %12llu %8.1f%% %14.2f %12.3f\n", pol_name(p),
				       (unsigned long long)r.misses, total > 0 ? 100.0 * (double)r.hits / total : 0.0,
				       per_token / 1048576.0, per_token / floor_bytes);
			}
		}
	}
	if (json) {
		printf("], \"predictor\": [");
		for (int l = 0; t.has_pred && l < t.n_layer; l++)
			printf("%s{\"layer\": %d, \"predicted\": %llu, \"chosen\": %llu, \"both\": %llu}",
			       l ? ", " : "", l, (unsigned long long)t.pred_n[l],
			       (unsigned long long)t.chosen_pred_n[l], (unsigned long long)t.pred_hit[l]);
		printf("]}\n");
	} else if (t.has_pred) {
		printf("\npredictor (next layer's router on this layer's hidden state):\n  %-6s %10s %10s\n",
		       "layer", "precision", "recall");
		for (int l = 0; l < t.n_layer; l++)
			if (t.pred_n[l])
				printf("  %-6d %9.1f%% %9.1f%%\n", l, 100.0 * (double)t.pred_hit[l] / (double)t.pred_n[l],
				       t.chosen_pred_n[l] ? 100.0 * (double)t.pred_hit[l] / (double)t.chosen_pred_n[l] : 0.0);
	}
	free(next_use);
	free(seen);
	free(t.acc);
	free(t.pred_hit);
	free(t.pred_n);
	free(t.chosen_n);
	free(t.chosen_pred_n);
	return 0;
}
