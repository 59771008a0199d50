#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cand {
	float logit;
	int32_t id;
};

struct sampler {
	int n_vocab;
	struct sampler_params p;
	uint64_t rng;
	struct cand *c;       /* n_vocab candidates */
	float *pen;           /* n_vocab: penalised logits scratch */
	uint8_t *seen;        /* n_vocab flags for the penalty window */
	double *w;            /* n_vocab: the draw's unnormalised weights */
};

void sampler_params_default(struct sampler_params *p)
{
	*p = (struct sampler_params){
		.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
		.repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0,
	};
}

int sampler_params_check(const struct sampler_params *p, struct smk_err *err)
{
	if (!(p->temperature >= 0.0f && p->temperature <= 100.0f))
		return smk_fail(err, -EINVAL, "temperature %g is out of range (0..100)", (double)p->temperature);
	if (p->top_k < 0)
		return smk_fail(err, -EINVAL, "top_k %d is out of range (0 = off, or a positive count)", p->top_k);
	if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
		return smk_fail(err, -EINVAL, "top_p %g is out of range (0 < top_p <= 1)", (double)p->top_p);
	if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
		return smk_fail(err, -EINVAL, "min_p %g is out of range (0..1)", (double)p->min_p);
	if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= 10.0f))
		return smk_fail(err, -EINVAL, "repeat_penalty %g is out of range (0 < x <= 10)",
				(double)p->repeat_penalty);
	if (p->repeat_last_n < 0 || p->repeat_last_n > (1 << 20))
		return smk_fail(err, -EINVAL, "repeat_last_n %d is out of range (0..1048576)", p->repeat_last_n);
	return 0;
}

int sampler_new(struct sampler **out, int n_vocab, const struct sampler_params *p,
		struct smk_err *err)
{
	int rc = sampler_params_check(p, err);
	if (rc)
		return rc;
	if (n_vocab <= 0)
		return smk_fail(err, -EINVAL, "sampler: vocabulary size %d", n_vocab);
	struct sampler *s = calloc(1, sizeof(*s));
	if (!s)
		return smk_fail(err, -ENOMEM, "sampler: out of memory");
	s->n_vocab = n_vocab;
	s->p = *p;
	s->c = malloc(sizeof(*s->c) * (size_t)n_vocab);
	s->pen = malloc(sizeof(*s->pen) * (size_t)n_vocab);
	s->seen = calloc((size_t)n_vocab, 1);
	s->w = malloc(sizeof(*s->w) * (size_t)n_vocab);
	if (!s->c || !s->pen || !s->seen || !s->w) {
		sampler_free(s);
		return smk_fail(err, -ENOMEM, "sampler: out of memory");
	}
	sampler_reset(s, p->seed);
	*out = s;
	return 0;
}

void sampler_free(struct sampler *s)
{
	if (!s)
		return;
	free(s->c);
	free(s->pen);
	free(s->seen);
	free(s->w);
	free(s);
}

void sampler_reset(struct sampler *s, uint64_t seed)
{
	s->rng = seed;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 bits. */
static double rng_uniform(uint64_t *state)
{
	return (double)(splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
}

int32_t sampler_argmax(const float *logits, int n)
{
	int32_t best = 0;
	for (int i = 1; i < n; i++)
		if (logits[i] > logits[best])
			best = i;
	return best;
}

static int cand_desc(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->logit != y->logit)
		return x->logit < y->logit ? 1 : -1;
	return x->id - y->id;
}

/* Sift-down for a min-heap on logit (ties: larger id is "smaller", so the
 * lower id survives, as a stable sort would keep it). */
static int cand_less(const struct cand *a, const struct cand *b)
{
	return a->logit < b->logit || (a->logit == b->logit && a->id > b->id);
}

static void heap_down(struct cand *h, int n, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && cand_less(&h[l], &h[m]))
			m = l;
		if (r < n && cand_less(&h[r], &h[m]))
			m = r;
		if (m == i)
			return;
		struct cand t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/* Keep the k best of logits[0..n) in s->c[0..k), sorted best first. */
static int select_top_k(struct sampler *s, const float *logits, int n, int k)
{
	struct cand *h = s->c;
	if (k <= 0 || k >= n) {
		for (int i = 0; i < n; i++)
			h[i] = (struct cand){ logits[i], i };
		qsort(h, (size_t)n, sizeof(*h), cand_desc);
		return n;
	}
	for (int i = 0; i < k; i++)
		h[i] = (struct cand){ logits[i], i };
	for (int i = k / 2 - 1; i >= 0; i--)
		heap_down(h, k, i);
	for (int i = k; i < n; i++) {
		struct cand c = { logits[i], i };
		if (cand_less(&h[0], &c)) {
			h[0] = c;
			heap_down(h, k, 0);
		}
	}
	qsort(h, (size_t)k, sizeof(*h), cand_desc);
	return k;
}

int32_t sampler_sample(struct sampler *s, const float *logits, const int32_t *history,
		       int n_hist, float *prob)
{
	const struct sampler_params *p = &s->p;
	const int n = s->n_vocab;

	if (p->repeat_penalty != 1.0f && n_hist > 0 && p->repeat_last_n > 0) {
		if (logits != s->pen)         /* sampler_sample_masked's are there */
			memcpy(s->pen, logits, sizeof(float) * (size_t)n);
		int from = n_hist > p->repeat_last_n ? n_hist - p->repeat_last_n : 0;
		for (int i = from; i < n_hist; i++) {
			int32_t t = history[i];
			if (t < 0 || t >= n || s->seen[t])
				continue;
			s->seen[t] = 1;
			s->pen[t] = s->pen[t] > 0 ? s->pen[t] / p->repeat_penalty
						  : s->pen[t] * p->repeat_penalty;
		}
		for (int i = from; i < n_hist; i++)
			if (history[i] >= 0 && history[i] < n)
				s->seen[history[i]] = 0;
		logits = s->pen;
	}

	if (p->temperature <= 0.0f) {
		if (prob)
			*prob = 1.0f;
		return sampler_argmax(logits, n);
	}

	struct cand *c = s->c;
	int k;
	float mx;
	double sum, z_all = 0.0;  /* z_all: sum of exp over the vocabulary, once */
	if (p->top_k > 0) {
		k = select_top_k(s, logits, n, p->top_k);
		mx = c[0].logit;
	} else if (p->top_p < 1.0f) {
		/* The nucleus is found without sorting the whole vocabulary:
		 * take the best 64, and grow that set until its mass reaches
		 * top_p of the total (exactly what a full sort would keep). */
		mx = logits[sampler_argmax(logits, n)];
		for (int i = 0; i < n; i++)
			z_all += exp((double)logits[i] - mx);
		for (k = 64 < n ? 64 : n;; k = k * 4 < n ? k * 4 : n) {
			select_top_k(s, logits, n, k);
			double mass = 0.0;
			for (int i = 0; i < k; i++)
				mass += exp((double)c[i].logit - mx);
			if (mass >= p->top_p * z_all || k == n)
				break;
		}
	} else {
		/* No cut that needs an order: every token is a candidate, in
		 * vocabulary order (min-p below needs no order either). */
		mx = logits[sampler_argmax(logits, n)];
		float cut = p->min_p > 0.0f ? mx + logf(p->min_p) : -INFINITY;
		k = 0;
		for (int i = 0; i < n; i++)
			if (logits[i] >= cut)
				c[k++] = (struct cand){ logits[i], i };
		goto draw;
	}

	/* Probabilities at temperature 1 for the top-p / min-p cuts, as
	 * llama.cpp applies those before the temperature; top-p's mass is that
	 * of the top-k survivors, or of the whole vocabulary without top-k. */
	if (p->top_p < 1.0f) {
		/* Without top-k the nucleus search summed the vocabulary
		 * already (z_all); with it, the survivors' mass is the total. */
		double z = z_all;
		if (p->top_k > 0)
			for (int i = 0; i < k; i++)
				z += exp((double)c[i].logit - mx);
		double acc = 0.0;
		int keep = k;
		for (int i = 0; i < k; i++) {
			acc += exp((double)c[i].logit - mx) / z;
			if (acc >= p->top_p) {
				keep = i + 1;
				break;
			}
		}
		k = keep;
	}
	if (p->min_p > 0.0f) {
		/* p_i / p_max >= min_p  <=>  logit_i >= logit_max + ln(min_p) */
		float cut = mx + logf(p->min_p);
		int keep = 1;
		while (keep < k && c[keep].logit >= cut)
			keep++;
		k = keep;
	}

draw:
	sum = 0.0;
	for (int i = 0; i < k; i++)
		sum += s->w[i] = exp(((double)c[i].logit - mx) / p->temperature);
	double r = rng_uniform(&s->rng) * sum, acc = 0.0;
	int pick = k - 1;
	for (int i = 0; i < k; i++) {
		acc += s->w[i];
		if (r < acc) {
			pick = i;
			break;
		}
	}
	if (prob)
		*prob = (float)(s->w[pick] / sum);
	return c[pick].id;
}

int32_t sampler_sample_masked(struct sampler *s, const float *logits, const uint32_t *allow,
			      const int32_t *history, int n_hist, float *prob)
{
	const int n = s->n_vocab;
	float *pen = s->pen;
	for (int w = 0; w * 32 < n; w++) {
		int from = w * 32, to = from + 32 < n ? from + 32 : n;
		uint32_t bits = allow[w];
		if (bits == 0xffffffffu && to - from == 32) {
			memcpy(pen + from, logits + from, sizeof(float) * 32);
			continue;
		}
		if (bits == 0) {              /* most words of a structural state */
			for (int i = from; i < to; i++)
				pen[i] = -INFINITY;
			continue;
		}
		for (int i = from; i < to; i++)
			pen[i] = bits >> (i - from) & 1 ? logits[i] : -INFINITY;
	}
	int32_t id = sampler_sample(s, pen, history, n_hist, prob);
	if (allow[id >> 5] >> (id & 31) & 1)
		return id;
	/* Only where no allowed logit is finite (or a draw rounded onto a
	 * weightless last candidate): the first allowed token. */
	for (int i = 0; i < n; i++)
		if (allow[i >> 5] >> (i & 31) & 1)
			return i;
	return id;
}
