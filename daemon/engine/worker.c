/* worker.c - the engine's thread: bounded queue, admission under a KV budget,
 * continuous batching (every active sequence advances in one forward pass per
 * round), stop strings, statistics. */
#include "engine/worker.h"

#include "exec/kvpool.h"
#include "grammar/grammar.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a sequence owns from admission to its end. */
struct worker_seq {
	struct worker_job *job;
	struct kvcache *kv;            /* &kv_at: its memory is the job's pool extent */
	struct kvcache kv_at;
	struct sampler *smp;
	struct gmatch *gm;             /* the job's grammar, if any */
	int32_t *hist;                 /* prompt then generated tokens */
	int n_hist;
	int n_fed;                     /* prompt tokens already through the forward pass */
	int n_cached;                  /* of which restored from the prompt cache */
	int32_t pending;               /* last sampled token, fed at the next step */
	int n_gen;
	struct detok dt;
	char *hold;                    /* released-later text (possible stop-string start) */
	size_t n_hold, cap_hold;
	char *piece;                   /* one token's text */
	size_t cap_piece;
	size_t max_stop;               /* longest stop string */
	double t_admit, t_first;
	int slot;                      /* index in w->active this round */
	enum worker_finish fin;        /* why it ended, once ended */
	struct smk_err fin_err;
};

struct worker {
	struct engine *e;
	struct worker_opts o;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t wake;           /* the worker waits on it for jobs */
	pthread_cond_t idle;           /* drain waits on it for the end of work */
	/* Under lock. */
	struct worker_job *q_head, *q_tail;
	int q_len;
	int n_unfinished;              /* accepted jobs whose on_done has not returned */
	int n_active;
	uint64_t kv_used;              /* the admitted jobs' kv_bytes */
	struct kvpool *pool;           /* where their caches lie in kv_mem */
	bool accepting;
	bool cancel_all;
	bool quit;
	struct worker_stats st;
	/* Worker thread only. */
	void *kv_mem;                  /* the pool's region, backend memory */
	struct worker_seq **active;
	struct fwd_item *items;        /* one round's batch, max_active entries */
	struct worker_seq **item_seq;  /* the sequence of each item */
	bool *ended;                   /* per active slot, this round */
	struct gvocab *gv;             /* the vocabulary's trie, at the first grammar */
	struct pcache *pc;             /* the prompt cache, or NULL */
	int rotate;                    /* where the next round starts filling */
};

static const double ttft_le[] = { 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
static const double tpot_le[] = { 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1 };
static const double dur_le[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300 };

static void histo_init(struct worker_histo *h, const double *le, int n)
{
	memset(h, 0, sizeof(*h));
	h->n = n;
	memcpy(h->le, le, sizeof(double) * (size_t)n);
}

static void histo_add(struct worker_histo *h, double v)
{
	int i = 0;
	while (i < h->n && v > h->le[i])
		i++;
	h->count[i]++;
	h->total++;
	h->sum += v;
}

const char *worker_finish_name(enum worker_finish f)
{
	switch (f) {
	case WORKER_FINISH_STOP: return "stop";
	case WORKER_FINISH_LENGTH: return "length";
	case WORKER_FINISH_CANCELLED: return "cancelled";
	case WORKER_FINISH_TIMEOUT: return "timeout";
	case WORKER_FINISH_ERROR: return "error";
	}
	return "?";
}

uint64_t worker_job_kv_bytes(const struct worker *w, int n_ctx)
{
	return kvcache_bytes(w->e->model, n_ctx);
}

/* ---- the KV pool ----
 *
 * A job's cache is one pool extent: K at its start, V one aligned half
 * further, so both halves start on KVPOOL_ALIGN boundaries. */

static uint64_t job_v_offset(const struct worker_job *j)
{
	return kvpool_round(j->kv_bytes / 2);
}

static uint64_t job_pool_bytes(const struct worker_job *j)
{
	return 2 * job_v_offset(j);
}

/* Bytes of the pool's region for a budget: whatever the rounding of the
 * halves, a job of kv_bytes <= budget takes 2 * round(kv_bytes / 2) <=
 * round(budget) + KVPOOL_ALIGN bytes, so one such job always fits the
 * empty pool (what lets a job admitted by the budget never wait forever). */
static uint64_t pool_region_bytes(uint64_t budget)
{
	return kvpool_round(budget) + KVPOOL_ALIGN;
}

/* ---- sequences ---- */

static void seq_free(struct worker_seq *s)
{
	if (!s)
		return;
	/* s->kv is kv_at, over pool memory that job_finish returns */
	sampler_free(s->smp);
	gmatch_free(s->gm);
	free(s->hist);
	free(s->hold);
	free(s->piece);
	free(s);
}

/* Everything a sequence needs, allocated once here; its KV cache lies in
 * the pool extent admission gave the job (job->kv_off). */
static int seq_new(struct worker *w, struct worker_job *job, struct worker_seq **out,
		   struct smk_err *err)
{
	struct engine *e = w->e;
	struct worker_seq *s = calloc(1, sizeof(*s));
	if (!s)
		return smk_fail(err, -ENOMEM, "out of memory for a sequence");
	s->job = job;
	int n_ctx = job->n_prompt + job->max_tokens;
	char *k_mem = (char *)w->kv_mem + job->kv_off;
	int rc;
	if ((rc = kvcache_init_at(&s->kv_at, e->model, n_ctx, e->be, k_mem,
				  k_mem + job_v_offset(job), err)) ||
	    (rc = sampler_new(&s->smp, e->model->hp.n_vocab, &job->sp, err)))
		goto fail;
	s->kv = &s->kv_at;
	/* A grammar's masks: up to 8 MiB of them cached per sequence. */
	if (job->grammar && ((!w->gv && (rc = gvocab_new(&w->gv, e->tok, err))) ||
			     (rc = gmatch_new(&s->gm, job->grammar, w->gv, 8u << 20, err))))
		goto fail;
	for (int i = 0; i < job->n_stop; i++) {
		size_t l = strlen(job->stop[i]);
		if (l > s->max_stop)
			s->max_stop = l;
	}
	s->cap_piece = tokenizer_detok_cap(e->tok) + 8;
	s->cap_hold = s->cap_piece + s->max_stop + 64;  /* + a detok_flush */
	s->hist = malloc(sizeof(int32_t) * (size_t)(n_ctx + 1));
	s->piece = malloc(s->cap_piece);
	s->hold = malloc(s->cap_hold);
	if (!s->hist || !s->piece || !s->hold) {
		rc = smk_fail(err, -ENOMEM, "out of memory for a sequence of %d positions", n_ctx);
		goto fail;
	}
	memcpy(s->hist, job->prompt, sizeof(int32_t) * (size_t)job->n_prompt);
	s->n_hist = job->n_prompt;
	detok_init(&s->dt);
	/* All but the last prompt token may come from the prompt cache: the
	 * last one's logits are what the first sample needs. */
	if (w->pc) {
		rc = pcache_restore(w->pc, job->prompt, job->n_prompt, job->n_prompt - 1, s->kv, err);
		if (rc < 0)
			goto fail;
		s->n_fed = s->n_cached = rc;
	}
	*out = s;
	return 0;
fail:
	seq_free(s);
	return rc;
}

/* Log-probabilities of the raw logits: the sampled token's and the top n. */
static void fill_logprobs(const float *logits, int n_vocab, int n_top, struct worker_token *t)
{
	float mx = logits[0];
	for (int i = 1; i < n_vocab; i++)
		if (logits[i] > mx)
			mx = logits[i];
	double sum = 0;
	for (int i = 0; i < n_vocab; i++)
		sum += exp((double)(logits[i] - mx));
	const float lse = mx + (float)log(sum);
	t->logprob = logits[t->id] - lse;
	t->n_top = 0;
	for (int i = 0; i < n_vocab && n_top > 0; i++) {
		float l = logits[i];
		if (t->n_top == n_top && l <= logits[t->top[n_top - 1].id])
			continue;
		int j = t->n_top < n_top ? t->n_top++ : n_top - 1;
		while (j > 0 && logits[t->top[j - 1].id] < l) {
			t->top[j] = t->top[j - 1];
			j--;
		}
		t->top[j].id = i;
	}
	for (int j = 0; j < t->n_top; j++)
		t->top[j].logprob = logits[t->top[j].id] - lse;
}

/* Release held text: everything if final, else all but the longest suffix
 * that could start a stop string.  Returns true if a stop string matched. */
static bool release_text(struct worker_seq *s, struct worker_token *tok, bool final)
{
	struct worker_job *j = s->job;
	size_t cut = s->n_hold;
	bool stopped = false;
	for (int i = 0; i < j->n_stop; i++) {
		const char *m = memmem(s->hold, s->n_hold, j->stop[i], strlen(j->stop[i]));
		if (m && (size_t)(m - s->hold) < cut) {
			cut = (size_t)(m - s->hold);
			stopped = true;
		}
	}
	size_t emit = cut;
	if (!stopped && !final && j->n_stop) {
		/* Keep back a suffix that is a prefix of some stop string. */
		size_t keep = 0;
		for (int i = 0; i < j->n_stop; i++) {
			size_t l = strlen(j->stop[i]);
			for (size_t k = l - 1 < s->n_hold ? l - 1 : s->n_hold; k > keep; k--)
				if (!memcmp(s->hold + s->n_hold - k, j->stop[i], k)) {
					keep = k;
					break;
				}
		}
		emit = s->n_hold - keep;
	}
	if (tok)
		tok->held = (uint32_t)(s->n_hold - emit);
	if (emit || tok)
		j->on_text(j->ctx, s->hold, emit, tok);
	if (stopped) {
		s->n_hold = 0;
	} else {
		memmove(s->hold, s->hold + emit, s->n_hold - emit);
		s->n_hold -= emit;
	}
	return stopped;
}

/* Sample from logits, report the token; returns true when the sequence ends
 * (and sets *fin). */
static bool seq_sample(struct worker *w, struct worker_seq *s, const float *logits,
		       enum worker_finish *fin)
{
	struct engine *e = w->e;
	struct worker_job *j = s->job;
	struct worker_token t = { 0 };
	if (s->gm && !gmatch_waiting(s->gm)) {
		/* Only tokens that keep the text a prefix of a valid value,
		 * one that the tokens left can still complete. */
		bool optional = j->grammar_optional && s->n_gen == 0;
		const uint32_t *allow = optional ? gmatch_mask_optional(s->gm)
						 : gmatch_mask_budget(s->gm, j->max_tokens - s->n_gen);
		if (!gmatch_mask_count(s->gm)) {
			smk_fail(&s->fin_err, -EINVAL, "no token of the vocabulary continues the "
				 "structured output here");
			*fin = WORKER_FINISH_ERROR;
			return true;
		}
		t.id = sampler_sample_masked(s->smp, logits, allow, s->hist, s->n_hist, NULL);
		if (gmatch_accept(s->gm, t.id) && optional)
			s->gm = gmatch_free(s->gm);    /* free text: the grammar is off */
	} else {
		t.id = sampler_sample(s->smp, logits, s->hist, s->n_hist, NULL);
		/* a grammar waiting for its trigger reads the free text; a
		 * token that runs past the trigger into text the frame cannot
		 * begin leaves it off (what follows cannot be a valid call) */
		if (s->gm && gmatch_accept(s->gm, t.id))
			s->gm = gmatch_free(s->gm);
	}
	s->hist[s->n_hist++] = t.id;
	s->n_gen++;
	if (s->n_gen == 1)
		s->t_first = smk_now();
	if (j->n_logprobs >= 0)
		fill_logprobs(logits, e->model->hp.n_vocab, j->n_logprobs, &t);
	if (tokenizer_is_eog(e->tok, t.id)) {
		/* The end token's own text is not output. */
		size_t n = detok_flush(&s->dt, s->hold + s->n_hold, s->cap_hold - s->n_hold);
		s->n_hold += n;
		release_text(s, &t, true);
		*fin = WORKER_FINISH_STOP;
		return true;
	}
	size_t n = detok_push(e->tok, &s->dt, t.id, s->piece, s->cap_piece);
	if (n > s->cap_hold - s->n_hold)
		n = s->cap_hold - s->n_hold;  /* cannot happen: hold has room for a piece */
	memcpy(s->hold + s->n_hold, s->piece, n);
	s->n_hold += n;
	/* A complete value that nothing may follow ends the generation. */
	bool done = s->gm && gmatch_done(s->gm);
	bool last = s->n_gen >= j->max_tokens || done;
	if (last) {
		n = detok_flush(&s->dt, s->hold + s->n_hold, s->cap_hold - s->n_hold);
		s->n_hold += n;
	}
	if (release_text(s, &t, last)) {
		*fin = WORKER_FINISH_STOP;
		return true;
	}
	if (last) {
		/* a value complete at max_tokens is not cut off */
		*fin = done || (s->gm && gmatch_can_end(s->gm)) ? WORKER_FINISH_STOP : WORKER_FINISH_LENGTH;
		return true;
	}
	s->pending = t.id;
	return false;
}

/* Note that a sequence ended this round; it is reported (job_finish) and
 * dropped after the round, so the batch's bookkeeping stays simple. */
static void seq_mark_ended(struct worker *w, struct worker_seq *s, enum worker_finish fin,
			   const struct smk_err *err)
{
	w->ended[s->slot] = true;
	s->fin = fin;
	if (err)
		s->fin_err = *err;
	else if (fin != WORKER_FINISH_ERROR)   /* seq_sample's own error is kept */
		smk_err_clear(&s->fin_err);
}

/* Has the job been cancelled or run past its deadline? */
static bool seq_should_end(const struct worker_seq *s, enum worker_finish *fin)
{
	const struct worker_job *j = s->job;
	if (atomic_load(&j->cancel)) {
		*fin = WORKER_FINISH_CANCELLED;
		return true;
	}
	if (j->deadline > 0 && smk_now() > j->deadline) {
		*fin = WORKER_FINISH_TIMEOUT;
		return true;
	}
	return false;
}

/* Add sequence slot i to the round's batch if the token budget allows:
 * a decoding sequence feeds its pending token, a prefilling one the next
 * chunk of its prompt (as much as the budget leaves). */
static void round_add(struct worker *w, int i, bool decoding, int *n_items, int *budget)
{
	struct worker_seq *s = w->active[i];
	struct worker_job *j = s->job;
	if (w->ended[i] || *budget <= 0 || (s->n_fed == j->n_prompt) != decoding)
		return;
	struct fwd_item *it = &w->items[*n_items];
	*it = (struct fwd_item){ .kv = s->kv };
	if (decoding) {
		it->tok = &s->pending;
		it->n = 1;
		it->n_logits = 1;
	} else {
		int n = j->n_prompt - s->n_fed;
		if (n > *budget)
			n = *budget;
		it->tok = j->prompt + s->n_fed;
		it->n = n;
		it->n_logits = s->n_fed + n == j->n_prompt ? 1 : 0;
	}
	*budget -= it->n;
	w->item_seq[(*n_items)++] = s;
}

/* After the forward pass: advance a sequence by its item and sample when
 * the item produced logits.  Returns true when the sequence has ended. */
static bool round_finish_item(struct worker *w, struct fwd_item *it, struct worker_seq *s,
			      enum worker_finish *fin)
{
	if (s->n_fed < s->job->n_prompt) {
		s->n_fed += it->n;
		if (!it->n_logits)
			return false;
	}
	return seq_sample(w, s, it->logits, fin);
}

/* One round of continuous batching: every active sequence advances in ONE
 * forward pass, so each weight block is streamed once for all of them.
 * Decoding sequences go first (one token each) so that a long prompt never
 * stalls the others' streams; prompts fill the rest of the engine's n_batch
 * tokens in chunks.  Ended sequences are marked in w->ended. */
static void run_round(struct worker *w, struct smk_err *err)
{
	struct engine *e = w->e;
	int n_active = 0;
	while (n_active < w->o.max_active && w->active[n_active])
		n_active++;
	int n_items = 0, budget = e->n_batch;
	for (int k = 0; k < n_active; k++)
		round_add(w, (w->rotate + k) % n_active, true, &n_items, &budget);
	for (int k = 0; k < n_active; k++)
		round_add(w, (w->rotate + k) % n_active, false, &n_items, &budget);
	w->rotate = n_active ? (w->rotate + 1) % n_active : 0;
	if (!n_items)
		return;

	enum worker_finish fin;
	if (forward_run_batch(e->fwd, w->items, n_items, err) == 0) {
		for (int i = 0; i < n_items; i++) {
			struct worker_seq *s = w->item_seq[i];
			if (round_finish_item(w, &w->items[i], s, &fin))
				seq_mark_ended(w, s, fin, NULL);
		}
		return;
	}
	/* The batch was refused as a whole (nothing advanced): run the items
	 * one by one so that only the sequence at fault fails. */
	for (int i = 0; i < n_items; i++) {
		struct worker_seq *s = w->item_seq[i];
		struct smk_err one = { 0 };
		if (forward_run_batch(e->fwd, &w->items[i], 1, &one)) {
			seq_mark_ended(w, s, WORKER_FINISH_ERROR, &one);
			continue;
		}
		if (round_finish_item(w, &w->items[i], s, &fin))
			seq_mark_ended(w, s, fin, NULL);
	}
}

/* ---- the thread ---- */

/* Return an admitted job's pool extent; under the lock. */
static void release_extent(struct worker *w, struct worker_job *j)
{
	/* It was placed at admission and is released once: a failure here
	 * is the worker's own bug, and would leak the extent for good. */
	if (kvpool_release(w->pool, j->kv_off))
		abort();
}

/* Report a job's end; called without the lock.  The stats are updated
 * first, under the lock, so that a client that sees its answer also sees it
 * counted. */
static void job_finish(struct worker *w, struct worker_job *j, struct worker_seq *s,
		       enum worker_finish fin, const struct smk_err *err)
{
	double now = smk_now();
	struct worker_result r = { .finish = fin, .n_prompt = j->n_prompt };
	if (s) {
		r.n_gen = s->n_gen;
		r.n_cached = s->n_cached;
		r.queue_s = s->t_admit - j->t_submit;
		r.ttft_s = s->n_gen ? s->t_first - j->t_submit : 0;
	} else {
		r.queue_s = now - j->t_submit;
	}
	r.duration_s = now - j->t_submit;
	if (err && fin == WORKER_FINISH_ERROR)
		r.err = *err;

	pthread_mutex_lock(&w->lock);
	struct worker_stats *st = &w->st;
	if (s) {
		w->n_active--;
		w->kv_used -= j->kv_bytes;
		release_extent(w, j);
		st->prompt_tokens += (uint64_t)s->n_fed;
		st->gen_tokens += (uint64_t)s->n_gen;
		if (s->n_gen)
			histo_add(&st->ttft, r.ttft_s);
		if (s->n_gen > 1)
			histo_add(&st->tpot, (now - s->t_first) / (s->n_gen - 1));
	}
	if (w->pc)
		pcache_get_stats(w->pc, &st->pcache);
	switch (fin) {
	case WORKER_FINISH_STOP:
	case WORKER_FINISH_LENGTH: st->completed++; break;
	case WORKER_FINISH_CANCELLED: st->cancelled++; break;
	case WORKER_FINISH_TIMEOUT: st->timeouts++; break;
	case WORKER_FINISH_ERROR: st->failed++; break;
	}
	histo_add(&st->duration, r.duration_s);
	pthread_cond_broadcast(&w->idle);
	pthread_mutex_unlock(&w->lock);

	seq_free(s);
	j->grammar = grammar_free(j->grammar);   /* taken at submit */
	j->on_done(j->ctx, &r);
	/* Only now is the job over for worker_drain: its on_done has run (j
	 * may already be gone, so it is not touched again). */
	pthread_mutex_lock(&w->lock);
	w->n_unfinished--;
	pthread_cond_broadcast(&w->idle);
	pthread_mutex_unlock(&w->lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct smk_err err;
	for (;;) {
		/* Admission: pop what may start, under the lock; allocate outside it. */
		struct worker_job *admit = NULL, **tail = &admit, *dropped = NULL;
		pthread_mutex_lock(&w->lock);
		while (!w->quit && w->n_active == 0 && !w->q_head)
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->quit && w->n_active == 0 && !w->q_head) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		/* Admission is FIFO: once a job cannot start, none behind it
		 * may.  Cancelled or late jobs are dropped wherever they wait,
		 * so an abandoned request behind a blocked head frees its
		 * queue place at once (the queue is bounded: the walk is
		 * short). */
		bool blocked = false;
		struct worker_job **pp = &w->q_head, *prev = NULL;
		while (*pp) {
			struct worker_job *j = *pp;
			bool drop = w->cancel_all || atomic_load(&j->cancel) ||
				    (j->deadline > 0 && smk_now() > j->deadline);
			/* Within the budget, the cache must also find a free
			 * extent of the pool: when the free bytes are split
			 * between running caches, the job waits as an
			 * over-budget one does, until enough of them end.  (With
			 * nothing running the pool is one extent that holds any
			 * job the budget admits: pool_region_bytes.) */
			if (!drop && (blocked || w->n_active >= w->o.max_active ||
				      w->kv_used + j->kv_bytes > w->o.kv_budget ||
				      kvpool_alloc(w->pool, job_pool_bytes(j), &j->kv_off))) {
				blocked = true;
				prev = j;
				pp = &j->next;
				continue;
			}
			*pp = j->next;
			if (w->q_tail == j)
				w->q_tail = prev;
			w->q_len--;
			if (drop) {
				j->next = dropped;
				dropped = j;
				continue;
			}
			w->n_active++;
			w->kv_used += j->kv_bytes;
			w->st.admitted++;
			histo_add(&w->st.queue_wait, smk_now() - j->t_submit);
			j->next = NULL;
			*tail = j;
			tail = &j->next;
		}
		bool cancel_all = w->cancel_all;
		pthread_mutex_unlock(&w->lock);

		while (dropped) {
			struct worker_job *j = dropped;
			dropped = j->next;
			bool late = !atomic_load(&j->cancel) && !cancel_all;
			job_finish(w, j, NULL, late ? WORKER_FINISH_TIMEOUT : WORKER_FINISH_CANCELLED, NULL);
		}
		while (admit) {
			struct worker_job *j = admit;
			admit = j->next;
			struct worker_seq *s = NULL;
			smk_err_clear(&err);
			if (seq_new(w, j, &s, &err)) {
				/* job_finish with a seq undoes the reservation; without one
				 * it would not, so undo it here. */
				pthread_mutex_lock(&w->lock);
				w->n_active--;
				w->kv_used -= j->kv_bytes;
				release_extent(w, j);
				pthread_mutex_unlock(&w->lock);
				job_finish(w, j, NULL, WORKER_FINISH_ERROR, &err);
				continue;
			}
			s->t_admit = smk_now();
			j->seq = s;
			/* Append: the round-robin order is the admission order. */
			int n = 0;
			while (w->active[n])
				n++;
			w->active[n] = s;
		}

		/* One round: every active sequence takes one step, in one batch. */
		double t0 = smk_now();
		int n_active = 0;
		while (n_active < w->o.max_active && w->active[n_active])
			n_active++;
		for (int i = 0; i < n_active; i++) {
			enum worker_finish fin;
			w->ended[i] = false;
			w->active[i]->slot = i;
			if (cancel_all)
				atomic_store(&w->active[i]->job->cancel, true);
			if (seq_should_end(w->active[i], &fin))
				seq_mark_ended(w, w->active[i], fin, NULL);
		}
		smk_err_clear(&err);
		run_round(w, &err);
		/* Report and drop the sequences that ended, keeping the order. */
		int kept = 0;
		for (int i = 0; i < n_active; i++) {
			struct worker_seq *s = w->active[i];
			if (!w->ended[i]) {
				w->active[kept++] = s;
				continue;
			}
			/* Keep its keys and values for later prompts (not after
			 * a failure, whose cache may be partly written).  A failed
			 * copy only means that nothing is kept. */
			if (w->pc && s->fin != WORKER_FINISH_ERROR) {
				struct smk_err e_store;
				pcache_store(w->pc, s->hist, s->kv, &e_store);
			}
			job_finish(w, s->job, s, s->fin, &s->fin_err);
		}
		for (int i = kept; i < n_active; i++)
			w->active[i] = NULL;
		pthread_mutex_lock(&w->lock);
		w->st.busy_s += smk_now() - t0;
		pthread_mutex_unlock(&w->lock);
	}
	return NULL;
}

/* ---- public ---- */

/* What worker_new allocated: the KV region and its pool, the batch arrays,
 * the worker itself (the thread, locks and sequences are gone by then). */
static void worker_free_memory(struct worker *w)
{
	if (w->kv_mem)
		backend_free_mem(w->e->be, w->kv_mem);
	kvpool_free(w->pool);
	pcache_free(w->pc);
	gvocab_free(w->gv);
	free(w->active);
	free(w->items);
	free(w->item_seq);
	free(w->ended);
	free(w);
}

int worker_new(struct worker **out, struct engine *e, const struct worker_opts *o,
	       struct smk_err *err)
{
	if (o->max_active < 1 || o->queue_cap < 0)
		return smk_fail(err, -EINVAL, "worker: max_active %d / queue %d out of range",
				o->max_active, o->queue_cap);
	/* the config caps limits.kv_budget at 2^50; this keeps the region's
	 * size (and size_t) from overflowing whatever the caller passes */
	if (o->kv_budget == 0 || o->kv_budget > (UINT64_C(1) << 56))
		return smk_fail(err, -EINVAL, "worker: KV budget of %llu bytes out of range",
				(unsigned long long)o->kv_budget);
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return smk_fail(err, -ENOMEM, "worker: out of memory");
	w->e = e;
	w->o = *o;
	w->accepting = true;
	w->active = calloc((size_t)o->max_active + 1, sizeof(*w->active));
	w->items = calloc((size_t)o->max_active, sizeof(*w->items));
	w->item_seq = calloc((size_t)o->max_active, sizeof(*w->item_seq));
	w->ended = calloc((size_t)o->max_active, sizeof(*w->ended));
	int rc = 0;
	if (!w->active || !w->items || !w->item_seq || !w->ended) {
		rc = smk_fail(err, -ENOMEM, "worker: out of memory");
		goto fail;
	}
	/* Every KV cache the worker will ever hold, allocated now: admitting
	 * a request then only places it in the pool (no device allocation,
	 * and so no device synchronisation, while serving). */
	const uint64_t region = pool_region_bytes(o->kv_budget);
	struct smk_err e_alloc = { 0 };
	if ((rc = kvpool_new(&w->pool, region, o->max_active, err)))
		goto fail;
	if ((rc = backend_alloc(e->be, &w->kv_mem, (size_t)region, &e_alloc))) {
		rc = smk_fail(err, rc, "limits.kv_budget: cannot allocate its %llu bytes of KV cache "
			      "at start (%s); lower it", (unsigned long long)o->kv_budget, e_alloc.msg);
		goto fail;
	}
	/* The prompt cache's RAM, also allocated once, here. */
	if (o->prompt_cache &&
	    (rc = pcache_new(&w->pc, o->prompt_cache, e->model->hp.n_layer,
			     (int64_t)e->model->hp.n_head_kv * e->model->hp.head_dim, err)))
		goto fail;
	if (w->pc)
		pcache_get_stats(w->pc, &w->st.pcache);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_cond_init(&w->idle, NULL);
	histo_init(&w->st.ttft, ttft_le, (int)(sizeof(ttft_le) / sizeof(double)));
	histo_init(&w->st.queue_wait, ttft_le, (int)(sizeof(ttft_le) / sizeof(double)));
	histo_init(&w->st.tpot, tpot_le, (int)(sizeof(tpot_le) / sizeof(double)));
	histo_init(&w->st.duration, dur_le, (int)(sizeof(dur_le) / sizeof(double)));
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->wake);
		pthread_cond_destroy(&w->idle);
		rc = smk_fail(err, -rc, "worker: cannot start the thread: %s", strerror(rc));
		goto fail;
	}
	w->started = true;
	*out = w;
	return 0;
fail:
	worker_free_memory(w);
	return rc;
}

static int submit(struct worker *w, struct worker_job *j, struct smk_err *err);

int worker_submit(struct worker *w, struct worker_job *j, struct smk_err *err)
{
	int rc = submit(w, j, err);
	if (rc)
		j->grammar = grammar_free(j->grammar);   /* taken even on failure */
	return rc;
}

static int submit(struct worker *w, struct worker_job *j, struct smk_err *err)
{
	const struct hparams *hp = &w->e->model->hp;
	if (j->n_prompt < 1 || j->max_tokens < 1 || !j->on_text || !j->on_done)
		return smk_fail(err, -EINVAL, "worker: empty prompt, max_tokens < 1 or no callbacks");
	for (int i = 0; i < j->n_prompt; i++)
		if (j->prompt[i] < 0 || j->prompt[i] >= hp->n_vocab)
			return smk_fail(err, -EINVAL, "prompt token %d at index %d is not in 0..%d",
					j->prompt[i], i, hp->n_vocab - 1);
	if (j->n_stop < 0 || j->n_stop > WORKER_MAX_STOP || j->n_logprobs < -1 ||
	    j->n_logprobs > WORKER_MAX_TOP)
		return smk_fail(err, -EINVAL, "worker: stop count or logprobs out of range");
	for (int i = 0; i < j->n_stop; i++) {
		size_t l = strlen(j->stop[i]);
		if (l < 1 || l > WORKER_MAX_STOP_LEN)
			return smk_fail(err, -EINVAL, "stop string %d must be 1..%d bytes", i, WORKER_MAX_STOP_LEN);
	}
	int rc = sampler_params_check(&j->sp, err);
	if (rc)
		return rc;
	int64_t n_ctx = (int64_t)j->n_prompt + j->max_tokens;
	if (n_ctx > w->e->n_ctx)
		return smk_fail(err, -E2BIG, "prompt (%d tokens) + max_tokens (%d) exceed the context of %d",
				j->n_prompt, j->max_tokens, w->e->n_ctx);
	j->kv_bytes = kvcache_bytes(w->e->model, (int)n_ctx);
	atomic_init(&j->cancel, false);
	j->next = NULL;
	j->seq = NULL;
	j->t_submit = smk_now();

	pthread_mutex_lock(&w->lock);
	w->st.submitted++;
	if (!w->accepting)
		rc = smk_fail(err, -ESHUTDOWN, "the server is shutting down");
	else if (j->kv_bytes > w->o.kv_budget) {
		w->st.rejected_size++;
		rc = smk_fail(err, -E2BIG, "prompt (%d tokens) + max_tokens (%d) need %llu bytes of KV cache; "
			      "the budget (limits.kv_budget) is %llu", j->n_prompt, j->max_tokens,
			      (unsigned long long)j->kv_bytes, (unsigned long long)w->o.kv_budget);
	} else if (w->q_len >= w->o.queue_cap &&
		   !(w->q_len == 0 && w->n_active < w->o.max_active)) {
		w->st.rejected_full++;
		rc = smk_fail(err, -EAGAIN, "the request queue is full (%d waiting)", w->q_len);
	} else {
		if (w->q_tail)
			w->q_tail->next = j;
		else
			w->q_head = j;
		w->q_tail = j;
		w->q_len++;
		w->n_unfinished++;
		pthread_cond_signal(&w->wake);
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void worker_cancel(struct worker *w, struct worker_job *j)
{
	atomic_store(&j->cancel, true);
	/* Wake the thread so that a queued job is dropped promptly. */
	pthread_mutex_lock(&w->lock);
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void worker_drain(struct worker *w, double grace_s)
{
	pthread_mutex_lock(&w->lock);
	w->accepting = false;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	double end = (double)until.tv_sec + until.tv_nsec * 1e-9 + (grace_s > 0 ? grace_s : 0);
	until.tv_sec = (time_t)end;
	until.tv_nsec = (long)((end - (double)until.tv_sec) * 1e9);
	/* n_unfinished, not n_active and the queue: a finished job leaves
	 * those before its on_done runs, and the promise is that every
	 * on_done has returned. */
	while (w->n_unfinished && grace_s > 0)
		if (pthread_cond_timedwait(&w->idle, &w->lock, &until))
			break;
	w->cancel_all = true;
	pthread_cond_signal(&w->wake);
	while (w->n_unfinished)
		pthread_cond_wait(&w->idle, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	if (w->started) {
		worker_drain(w, 0);
		pthread_mutex_lock(&w->lock);
		w->quit = true;
		pthread_cond_signal(&w->wake);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	pthread_cond_destroy(&w->idle);
	/* every sequence has ended (drained above): no op reads the region */
	worker_free_memory(w);
}

void worker_get_stats(struct worker *w, struct worker_stats *out)
{
	pthread_mutex_lock(&w->lock);
	*out = w->st;
	out->queue_depth = w->q_len;
	out->queue_cap = w->o.queue_cap;
	out->active = w->n_active;
	out->max_active = w->o.max_active;
	out->kv_bytes = w->kv_used;
	out->kv_budget = w->o.kv_budget;
	pthread_mutex_unlock(&w->lock);
}
