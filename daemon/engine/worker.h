/* worker.h - the one thread that owns the engine and serves requests.
 *
 * The HTTP threads never compute: they validate and tokenise a request, then
 * submit a job here with callbacks.  The worker thread admits jobs from a
 * bounded FIFO queue into at most `max_active` sequences, allocating each
 * sequence's sampler and buffers at admission (never per token) under a
 * byte budget for all KV caches together.  The caches themselves lie in one
 * region of kv_budget bytes of backend memory allocated when the worker
 * starts (exec/kvpool.h places them first fit), so admission allocates no
 * device memory.  A job whose cache does not fit the budget, or finds no
 * free extent of the region large enough, waits at the head of the queue
 * (no overtaking, so a big request cannot starve).  Every round takes all active sequences one step forward in ONE
 * batched forward pass (forward_run_batch): each decoding sequence feeds one
 * token, and prompts fill the rest of the engine's n_batch tokens in chunks.
 * Each weight block is therefore acquired once per round for the whole batch
 * (what makes a block streamed through the hierarchy serve every request),
 * prefill is chunked and interleaved with decoding, and decoders go first so
 * a long prompt never stalls the others' streams.
 *
 * Each sequence has its own sampler seeded from the request, attention reads
 * only that sequence's KV cache, and every matmul row is computed on its own
 * (batching changes no result bit: tests/unit/model checks it), so
 * concurrent requests with fixed seeds produce exactly the tokens each
 * produces alone.
 *
 * Cancellation: worker_cancel() (any thread) sets a flag that the worker reads
 * before each step of that job; a job past its deadline is cancelled the same
 * way.  Either way its memory is freed at that step and on_done reports it.
 *
 * Callbacks run on the worker thread, without any worker lock held: they must
 * be quick and must not block (copy into a buffer, signal, return).  They may
 * call worker_cancel(), never worker_submit() / worker_drain() / worker_free().
 * For each job that worker_submit() accepted, on_done runs exactly once, last;
 * after it returns the worker never touches the job again.  If worker_submit()
 * fails, no callback ever runs for that job.
 *
 * Prompt cache (exec/pcache.h, when prompt_cache > 0): a sequence that
 * ends by "stop" or "length" leaves the keys and values of its tokens
 * (prompt and output) in a RAM cache of prompt_cache bytes; at admission a
 * job copies the longest cached prefix of its prompt (all but its last
 * token, whose logits must be computed) into its own KV extent and feeds
 * only the rest.  Both copies run on this thread, between rounds, so the
 * cache needs no lock; its counters reach worker_get_stats under the lock.
 * Every position's keys and values are computed row by row, whatever the
 * batch (above), so a restored prefix holds the bits a fresh prefill would
 * have written: generated text is the same with the cache on and off.
 *
 * Left for later (documented here so that the interface already fits):
 *  - KV memory: caches are sized for prompt + max_tokens at admission; paged
 *    caches and prefix sharing between running sequences would admit more
 *    sequences under one budget.
 *  - Per-tier statistics from the weight hierarchy, once it exists.
 */
#ifndef SMK_ENGINE_WORKER_H
#define SMK_ENGINE_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "exec/pcache.h"
#include "util/err.h"

struct grammar;

#define WORKER_MAX_STOP 4          /* stop strings per job */
#define WORKER_MAX_STOP_LEN 256    /* bytes per stop string */
#define WORKER_MAX_TOP 5           /* alternatives per token with logprobs */

/* One generated token, reported with the text it released. */
struct worker_token {
	int32_t id;
	float logprob;                 /* log-softmax of the raw logits (temperature 1) */
	int n_top;                     /* alternatives in top[], most likely first */
	/* Bytes of generated text held back after this token (they may start
	 * a stop string; on a match, the stop string and what follows it):
	 * the text generated so far is the text released so far plus these.
	 * With it a caller tells which tokens lie wholly inside a matched stop
	 * string, whose text is never released. */
	uint32_t held;
	struct { int32_t id; float logprob; } top[WORKER_MAX_TOP];
};

enum worker_finish {
	WORKER_FINISH_STOP,            /* end-of-generation token or a stop string */
	WORKER_FINISH_LENGTH,          /* max_tokens reached */
	WORKER_FINISH_CANCELLED,       /* worker_cancel() or shutdown */
	WORKER_FINISH_TIMEOUT,         /* past the job's deadline */
	WORKER_FINISH_ERROR,           /* allocation or forward failure; see err */
};

const char *worker_finish_name(enum worker_finish f);

struct worker_result {
	enum worker_finish finish;
	int n_prompt, n_gen;
	int n_cached;                  /* prompt positions restored from the prompt cache */
	double queue_s;                /* submit -> admission */
	double ttft_s;                 /* submit -> first token (0 if none) */
	double duration_s;             /* submit -> done */
	struct smk_err err;            /* for WORKER_FINISH_ERROR */
};

/* text[len] is newly released output (whole UTF-8 characters; stop strings
 * already cut off; may be empty while a possible stop string is held back).
 * tok is the token sampled at this step, or NULL for the final flush. */
typedef void (*worker_text_fn)(void *ctx, const char *text, size_t len,
			       const struct worker_token *tok);
typedef void (*worker_done_fn)(void *ctx, const struct worker_result *r);

struct worker_seq;

/* A request as the worker sees it.  The submitter allocates it, fills the
 * first group of fields, and keeps it (and prompt and stop strings) alive
 * until on_done has returned. */
struct worker_job {
	const int32_t *prompt;         /* token ids, each < n_vocab (checked at submit) */
	int n_prompt;                  /* >= 1 */
	int max_tokens;                /* >= 1; n_prompt + max_tokens <= the context */
	struct sampler_params sp;      /* checked at submit */
	const char *stop[WORKER_MAX_STOP];
	int n_stop;
	int n_logprobs;                /* -1: none; 0: sampled token only; 1..5 alternatives */
	double deadline;               /* smk_now() time; 0: none */
	/* Structured output (grammar/grammar.h): NULL for free text; else
	 * every sampled token keeps the text a prefix of a value the grammar
	 * accepts, and the generation ends (finish "stop") once the value is
	 * complete and nothing may follow.  A grammar with a trigger
	 * (grammar_set_trigger) applies only once the output reaches it.
	 * Taken by worker_submit, even when it fails: the worker frees it
	 * when the job ends. */
	struct grammar *grammar;
	/* The grammar is optional (tool_choice "auto"): the first token either
	 * begins its value (then it holds to the end) or is free text that
	 * could not begin it (then the grammar is dropped); gmatch_mask_optional. */
	bool grammar_optional;
	worker_text_fn on_text;
	worker_done_fn on_done;
	void *ctx;

	atomic_bool cancel;            /* set through worker_cancel() */

	/* Private to the worker. */
	struct worker_job *next;
	struct worker_seq *seq;
	double t_submit;
	uint64_t kv_bytes;
	uint64_t kv_off;               /* its cache's place in the KV pool, once admitted */
};

struct worker_opts {
	int max_active;                /* sequences at once (>= 1) */
	int queue_cap;                 /* waiting jobs (>= 0) */
	uint64_t kv_budget;            /* bytes of KV cache over all sequences,
					* allocated by worker_new in the engine's
					* backend (1..2^56) */
	uint64_t prompt_cache;         /* bytes of RAM for the prompt cache
					* (exec/pcache.h), allocated by worker_new;
					* 0: none */
};

/* Histograms with fixed upper bounds (Prometheus semantics: count[i] counts
 * observations <= le[i], not cumulative here; count[n] is +Inf). */
#define WORKER_HISTO_MAX 12
struct worker_histo {
	int n;
	double le[WORKER_HISTO_MAX];
	uint64_t count[WORKER_HISTO_MAX + 1];
	uint64_t total;
	double sum;
};

struct worker_stats {
	int queue_depth, queue_cap, active, max_active;
	uint64_t kv_bytes, kv_budget;
	uint64_t prompt_tokens, gen_tokens;
	uint64_t submitted, admitted, completed, cancelled, timeouts, failed;
	uint64_t rejected_full, rejected_size;
	struct pcache_stats pcache;    /* all zero without a prompt cache */
	double busy_s;                 /* time spent stepping sequences */
	struct worker_histo ttft, tpot, duration, queue_wait;
};

struct worker;

/* Allocate the KV pool's region (kv_budget bytes and under 512 more for
 * alignment, in e's backend) and start the thread.  e stays owned by the
 * caller and must outlive the worker; from now on only the worker thread
 * uses it (the tokenizer, which is immutable, excepted).  *out owned by the
 * caller (worker_free).  -ENOMEM with err naming limits.kv_budget when the
 * region cannot be allocated. */
int worker_new(struct worker **out, struct engine *e, const struct worker_opts *o,
	       struct smk_err *err);

/* Queue a job.  Errors (no callback will run): -EAGAIN the queue is full;
 * -E2BIG it can never fit (context or KV budget); -EINVAL a bad field;
 * -ESHUTDOWN the worker is draining.  err says which. */
int worker_submit(struct worker *w, struct worker_job *job, struct smk_err *err);

/* Ask for a job to stop; safe from any thread, any number of times, until
 * its on_done has returned. */
void worker_cancel(struct worker *w, struct worker_job *job);

/* Stop accepting jobs, let running and queued ones finish for up to grace_s
 * seconds, then cancel the rest and wait until every on_done has run. */
void worker_drain(struct worker *w, double grace_s);

/* Drain with no grace, stop the thread, free.  NULL is fine. */
void worker_free(struct worker *w);

/* A consistent copy of the counters (takes the lock briefly). */
void worker_get_stats(struct worker *w, struct worker_stats *out);

/* KV bytes a job of n_ctx positions would reserve. */
uint64_t worker_job_kv_bytes(const struct worker *w, int n_ctx);

#endif
