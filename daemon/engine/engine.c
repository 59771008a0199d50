#include "engine/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The compute backend (compute/backend.h picks it), with a line saying
 * which and why in e->backend_note. */
static int open_backend(struct engine *e, const struct engine_opts *o,
			const struct backend_limits *lim, struct smk_err *err)
{
	return backend_open(&e->be, &e->kind, o->backend, o->gpu_id, o->num_gpus, lim,
			    e->backend_note, sizeof(e->backend_note), err);
}

/* memory.gpu_memory holds the KV cache and the activation scratch (the
 * forward pass's buffers, the GELU table, the quantised activations of
 * backend_device_scratch_bytes) as well
 * as the weights' slots: what is left of it after the first two becomes the
 * device tier's budget.  0 (no limit) stays 0. */
static int split_gpu_memory(struct engine *e, const struct engine_opts *o, int max_logits,
			    struct wstore_opts *wo, struct smk_err *err)
{
	e->gpu_kv = o->kv_reserve ? o->kv_reserve : kvcache_bytes(e->model, e->n_ctx);
	e->gpu_scratch = forward_scratch_bytes(e->model, e->n_batch, max_logits) +
			 backend_device_scratch_bytes(&e->be->limits);
	if (!wo->dev_budget)
		return 0;
	if (wo->dev_budget <= e->gpu_kv + e->gpu_scratch) {
		/* The daemon reserves limits.kv_budget, offline runs one context:
		 * name the one that sets the KV share, in its own positions. */
		const uint64_t per_pos = kvcache_bytes(e->model, 1);
		return smk_fail(err, -EINVAL,
				"memory.gpu_memory = %llu bytes does not even hold %s (%llu bytes for %llu positions) and the activations (%llu bytes): raise it, or lower %s",
				(unsigned long long)wo->dev_budget,
				o->kv_reserve ? "limits.kv_budget's KV cache" : "the KV cache",
				(unsigned long long)e->gpu_kv,
				(unsigned long long)(per_pos ? e->gpu_kv / per_pos : 0),
				(unsigned long long)e->gpu_scratch,
				o->kv_reserve ? "limits.kv_budget" : "model.context");
	}
	wo->dev_budget -= e->gpu_kv + e->gpu_scratch;
	e->gpu_weights = wo->dev_budget;
	return 0;
}

int engine_open(struct engine **out, const struct engine_opts *o, struct smk_err *err)
{
	struct engine *e = calloc(1, sizeof(*e));
	if (!e)
		return smk_fail(err, -ENOMEM, "engine: out of memory");
	struct model_load_opts mo = { .dtype = o->dtype, .shard_bytes = o->shard_bytes };
	int rc = model_load_opts(&e->model, o->model_path, &mo, err);
	if (rc)
		goto fail;
	if (!o->no_tokenizer && (rc = tokenizer_load_gguf(&e->tok, e->model->gguf, err)))
		goto fail;
	const struct hparams *hp = &e->model->hp;
	if (e->tok && tokenizer_n_vocab(e->tok) > hp->n_vocab) {
		rc = smk_fail(err, -EINVAL, "%s: tokenizer has %d tokens but the embedding table only %d rows",
			      o->model_path, tokenizer_n_vocab(e->tok), hp->n_vocab);
		goto fail;
	}

	e->n_ctx = o->n_ctx > 0 ? o->n_ctx : 4096;
	if (e->n_ctx > hp->n_ctx_train)
		e->n_ctx = hp->n_ctx_train;
	e->n_batch = o->n_batch > 0 ? o->n_batch : 256;
	if (e->n_batch > e->n_ctx)
		e->n_batch = e->n_ctx;
	int max_logits = o->max_logits > 0 ? o->max_logits : 1;
	if (max_logits > e->n_batch)
		max_logits = e->n_batch;

	int64_t max_cols = hp->n_embd;
	if (hp->n_ff > max_cols)
		max_cols = hp->n_ff;
	if ((int64_t)hp->n_head * hp->head_dim > max_cols)
		max_cols = (int64_t)hp->n_head * hp->head_dim;
	struct backend_limits lim = {
		.max_cols = max_cols, .max_rows = e->n_batch, .max_ctx = e->n_ctx,
		.max_heads = hp->n_head, .n_threads = o->n_threads,
	};
	if ((rc = open_backend(e, o, &lim, err)))
		goto fail;
	if (e->be->ops->host_memory) {
		rc = o->weights ? wstore_new_tiered(&e->ws, e->model, o->weights, err)
				: wstore_new_resident(&e->ws, e->model, o->load, err);
	} else {
		/* Device memory: every weight goes through the hierarchy's
		 * device tier (no budget set: room for the whole model). */
		struct wstore_opts wo;
		if (o->weights)
			wo = *o->weights;
		else
			wstore_opts_default(&wo);
		wo.compute_from_ram = false;
		/* The device tier through the same wdev code: on the GPU, or
		 * under the emulator (tests). */
		rc = backend_wdev_new(&e->wdev, e->be, e->kind, err);
		if (rc)
			goto fail;
		wo.dev = e->wdev;
		rc = split_gpu_memory(e, o, max_logits, &wo, err);
		if (!rc && (rc = wstore_new_tiered(&e->ws, e->model, &wo, err)) && wo.dev_budget) {
			/* The store names the weights' share as memory.gpu_memory:
			 * say what it was cut from. */
			char inner[sizeof(err->msg)];
			snprintf(inner, sizeof(inner), "%s", err->msg);
			smk_fail(err, rc, "%s (memory.gpu_memory = %llu bytes, less %llu for the KV cache and %llu for the activations, leaves that much for weights)",
				 inner, (unsigned long long)(e->gpu_weights + e->gpu_kv + e->gpu_scratch),
				 (unsigned long long)e->gpu_kv, (unsigned long long)e->gpu_scratch);
		}
	}
	if (rc || (rc = forward_new(&e->fwd, e->model, e->be, e->ws, e->n_batch, max_logits, err)) ||
	    (rc = forward_set_expert_prediction(e->fwd, o->expert_prediction, err)))
		goto fail;
	*out = e;
	return 0;
fail:
	engine_close(e);
	return rc;
}

bool engine_expert_note(const struct engine *e, char *buf, size_t len)
{
	const struct hparams *hp = &e->model->hp;
	if (len)
		buf[0] = 0;
	if (hp->n_expert <= 0)
		return false;
	const struct xpredict *xp = forward_expert_predictor(e->fwd);
	snprintf(buf, len,
		 "experts: %d a layer, %d used a token; prediction %s (%.1f MiB of router copies and history in host memory, outside the weight budgets)",
		 hp->n_expert, hp->n_expert_used, xp ? xpredict_mode_name(xpredict_mode(xp)) : "off",
		 (double)xpredict_bytes(xp) / (1 << 20));
	return true;
}

void engine_close(struct engine *e)
{
	if (!e)
		return;
	forward_free(e->fwd);
	wstore_free(e->ws);
	wdev_destroy(e->wdev);
	backend_free(e->be);
	tokenizer_free(e->tok);
	model_free(e->model);
	free(e);
}

int engine_generate(struct engine *e, struct kvcache *kv, const int32_t *prompt, int n_prompt,
		    int n_predict, struct sampler *s, gen_emit_fn emit, void *emit_ctx,
		    struct gen_stats *st, struct smk_err *err)
{
	const float *logits = NULL;
	int rc;
	memset(st, 0, sizeof(*st));
	st->n_prompt = n_prompt;
	if (n_prompt <= 0)
		return smk_fail(err, -EINVAL, "empty prompt: nothing to continue");
	if (n_prompt + n_predict > kv->n_ctx)
		return smk_fail(err, -ENOSPC, "prompt (%d tokens) + %d new tokens exceed the context of %d",
				n_prompt, n_predict, kv->n_ctx);

	/* The history for the repetition penalty: prompt then generated. */
	int32_t *hist = malloc(sizeof(int32_t) * (size_t)(n_prompt + n_predict + 1));
	/* One token's text, sized for the longest piece of this vocabulary. */
	size_t piece_cap = tokenizer_detok_cap(e->tok);
	char *piece = malloc(piece_cap);
	if (!hist || !piece) {
		free(hist);
		free(piece);
		return smk_fail(err, -ENOMEM, "out of memory");
	}
	memcpy(hist, prompt, sizeof(int32_t) * (size_t)n_prompt);
	int n_hist = n_prompt;

	double t0 = smk_now();
	for (int i = 0; i < n_prompt; i += e->n_batch) {
		int n = n_prompt - i < e->n_batch ? n_prompt - i : e->n_batch;
		bool last = i + n == n_prompt;
		if ((rc = forward_run(e->fwd, kv, prompt + i, n, last ? 1 : 0, &logits, err)))
			goto out;
	}
	double t1 = smk_now();
	st->prefill_s = t1 - t0;

	struct detok dt;
	detok_init(&dt);
	for (int g = 0; g < n_predict; g++) {
		int32_t id = sampler_sample(s, logits, hist, n_hist, NULL);
		hist[n_hist++] = id;
		st->n_gen++;
		if (tokenizer_is_eog(e->tok, id))
			break;
		size_t len = detok_push(e->tok, &dt, id, piece, piece_cap);
		if (emit && emit(emit_ctx, piece, len, id))
			break;
		if (g + 1 == n_predict)
			break;
		if ((rc = forward_run(e->fwd, kv, &id, 1, 1, &logits, err)))
			goto out;
	}
	size_t len = detok_flush(&dt, piece, piece_cap);
	if (len && emit)
		emit(emit_ctx, piece, len, -1);
	st->decode_s = smk_now() - t1;
	rc = 0;
out:
	free(hist);
	free(piece);
	return rc;
}

int engine_perplexity(struct engine *e, const int32_t *tok, int n_tok, int n_ctx,
		      double *ppl, int *n_scored, int *n_chunks, struct smk_err *err)
{
	const int n_vocab = e->model->hp.n_vocab;
	if (n_ctx < 4 || n_ctx > e->n_ctx)
		return smk_fail(err, -EINVAL, "perplexity context %d out of range (4..%d)", n_ctx, e->n_ctx);
	int chunks = n_tok / n_ctx;
	if (chunks < 1)
		return smk_fail(err, -EINVAL, "perplexity needs at least %d tokens, the text has %d",
				n_ctx, n_tok);
	struct kvcache *kv;
	int rc = kvcache_new(&kv, e->model, n_ctx, e->be, err);
	if (rc)
		return rc;
	int32_t *buf = malloc(sizeof(int32_t) * (size_t)n_ctx);
	if (!buf) {
		kvcache_free(kv);
		return smk_fail(err, -ENOMEM, "out of memory");
	}
	const int first = n_ctx / 2;
	double nll = 0.0;
	int count = 0;
	for (int c = 0; c < chunks; c++) {
		memcpy(buf, tok + (int64_t)c * n_ctx, sizeof(int32_t) * (size_t)n_ctx);
		if (tokenizer_add_bos(e->tok) && tokenizer_bos(e->tok) >= 0)
			buf[0] = tokenizer_bos(e->tok);
		kv->n_pos = 0;
		for (int i = 0; i < n_ctx; i += e->n_batch) {
			int n = n_ctx - i < e->n_batch ? n_ctx - i : e->n_batch;
			const float *logits;
			int n_logits = n;
			if ((rc = forward_run(e->fwd, kv, buf + i, n, n_logits, &logits, err)))
				goto out;
			for (int j = 0; j < n; j++) {
				int pos = i + j;
				if (pos < first || pos >= n_ctx - 1)
					continue;
				const float *lr = logits + (int64_t)j * n_vocab;
				float mx = lr[0];
				for (int v = 1; v < n_vocab; v++)
					if (lr[v] > mx)
						mx = lr[v];
				double sum = 0.0;
				for (int v = 0; v < n_vocab; v++)
					sum += exp((double)(lr[v] - mx));
				int32_t target = tok[(int64_t)c * n_ctx + pos + 1];
				nll += -((double)(lr[target] - mx) - log(sum));
				count++;
			}
		}
	}
	*ppl = exp(nll / count);
	*n_scored = count;
	*n_chunks = chunks;
	rc = 0;
out:
	free(buf);
	kvcache_free(kv);
	return rc;
}
