/* backend.h - the compute backend interface.
 *
 * A backend is a table of operations on float activations and quantised
 * weights.  The CPU backend (compute/cpu/) is the reference every other
 * backend is tested against op by op.  Activations are row-major: a batch of
 * n rows of width w is n*w floats.  Operations never allocate: scratch space
 * is sized when the backend is created (struct backend_limits).
 *
 * Memory: every activation, KV-cache and weight pointer an op takes is
 * memory of the backend (host memory for the CPU backend, device memory for
 * CUDA), made by its alloc op at set-up.  Callers that are not sure which
 * (forward.c) move bytes only through upload/download/copy; host_memory says
 * a pointer may also be read directly.  Ops are queued in call order and
 * may run after they return (CUDA); download waits for them.  Ops that
 * return void cannot report a failure at once: the backend keeps the first
 * one and the next matmul, embed, download or sync returns it.
 */
#ifndef SMK_COMPUTE_BACKEND_H
#define SMK_COMPUTE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compute/tensor.h"
#include "util/err.h"

struct backend;

/* Upper bounds fixed at creation: they size the scratch buffers. */
struct backend_limits {
	int64_t max_cols;    /* widest matmul input row */
	int max_rows;        /* most activation rows in one call (tokens) */
	int max_ctx;         /* longest attention span */
	int max_heads;
	int n_threads;       /* <= 0: all online CPUs */
};

enum rope_kind {
	ROPE_NORM, /* rotate pairs (x[2i], x[2i+1]): llama, mistral */
	ROPE_NEOX, /* rotate pairs (x[i], x[i+d/2]): qwen2, gemma */
};

struct rope_params {
	enum rope_kind kind;
	int n_rot;            /* rotated dims per head (<= head_dim) */
	float base;
	float freq_scale;     /* 1/linear scaling factor */
	const float *freq_factors; /* n_rot/2 divisors (llama3 rope_freqs) or NULL */
	/* YaRN, as ggml's rope_yarn computes it (gpt-oss): 0 = off.  With it
	 * on, dim pair i mixes its interpolated angle (freq_scale * theta) and
	 * its extrapolated one (theta) by ramp_mix = ext_factor * (1 -
	 * clamp((i - corr_dims[0]) / max(0.001, corr_dims[1] - corr_dims[0]),
	 * 0, 1)), and cos/sin are scaled by attn_factor * (1 + 0.1 ln
	 * (1/freq_scale)) (rope_yarn_mscale).  corr_dims from
	 * rope_yarn_corr_dims. */
	float ext_factor;
	float attn_factor;    /* ggml's attn_factor: the cos/sin magnitude (0 means 1) */
	float corr_dims[2];
};

/* The dims where YaRN's ramp runs, as ggml_rope_yarn_corr_dims rounds
 * them (floor / ceil, clamped to 0..n_dims-1): n_dims rotated dims,
 * n_ctx_orig the training context, base the RoPE base, beta_fast/slow the
 * ramp's ends in rotations (32 and 1 by default). */
void rope_yarn_corr_dims(int n_dims, int n_ctx_orig, float base, float beta_fast,
			 float beta_slow, float out[2]);

/* The cos/sin magnitude of rp: attn_factor (0 = 1), times 1 + 0.1 ln
 * (1/freq_scale) with YaRN on, fused as ggml's FMA build computes it. */
float rope_yarn_mscale(const struct rope_params *rp);

/* The angle of dim pair i (0 .. n_rot/2-1) for theta_extrap = pos *
 * base^(-2i/n_rot) / freq_factor: freq_scale * theta_extrap, mixed with
 * theta_extrap by YaRN's ramp when ext_factor != 0 (in ggml's fused
 * order).  Host code; the CUDA kernel computes the same operations. */
static inline float rope_yarn_theta(const struct rope_params *rp, int i, float theta_extrap)
{
	const float theta_interp = rp->freq_scale * theta_extrap;
	if (rp->ext_factor == 0.0f)
		return theta_interp;
	const float d = rp->corr_dims[1] - rp->corr_dims[0];
	const float y = ((float)i - rp->corr_dims[0]) / (d > 0.001f ? d : 0.001f);
	const float ramp_mix = (1.0f - (y < 0.0f ? 0.0f : y > 1.0f ? 1.0f : y)) * rp->ext_factor;
	return __builtin_fmaf(theta_interp, 1.0f - ramp_mix, theta_extrap * ramp_mix);
}

/* One attention call: n_q query rows at positions pos0..pos0+n_q-1 of one
 * sequence attend to keys 0..pos0+n_q-1 (causal), within `window` positions
 * if window > 0. */
struct attn_params {
	int n_head, n_head_kv, head_dim;
	int pos0, n_q;
	int window;           /* sliding window, 0 = global */
	float scale;          /* applied to q.k */
	int64_t kv_stride;    /* halves between positions in k and v */
	/* Attention sinks (gpt-oss): one logit per query head, in backend
	 * memory, that joins each softmax (in its max and its sum) without a
	 * value vector, so it takes probability mass from every position;
	 * NULL: none. */
	const float *sinks;
};

/* One sequence's attention within a batch (backend_ops.attentions). */
struct attn_call {
	const float *q;
	const uint16_t *k, *v;
	float *out;
	struct attn_params ap;
};

struct backend_ops {
	const char *name;
	void (*free)(struct backend *b);
	/* y[t][r] = sum_c W[r][c] x[t][c], t < n; rows r < w->ne1, c < w->ne0. */
	int (*matmul)(struct backend *b, const struct wtensor *w, const float *x, int n, float *y);
	/* y = x / rms(x) * w (w: F32 tensor of width `width`, or NULL), over n rows */
	void (*rmsnorm)(struct backend *b, const float *x, const struct wtensor *w, float *y,
			int width, int n, float eps);
	/* In-place rope on n rows of n_heads heads of head_dim, row t at pos0+t. */
	void (*rope)(struct backend *b, float *x, int n, int n_heads, int head_dim, int pos0,
		     const struct rope_params *rp);
	/* out[t] = softmax(q[t].K^T * scale + mask) V for every head.  k and v
	 * are the F16 KV cache: IEEE half bits (written by store_fp16). */
	void (*attention)(struct backend *b, const float *q, const uint16_t *k, const uint16_t *v,
			  float *out, const struct attn_params *ap);
	/* g[i] = act(g[i]) * u[i] over n values: GeGLU (tanh gelu) or SwiGLU. */
	void (*gelu_mul)(struct backend *b, float *g, const float *u, int64_t n);
	void (*silu_mul)(struct backend *b, float *g, const float *u, int64_t n);
	/* gpt-oss's clamped SwiGLU: x = min(g, limit), y = clamp(u, -limit,
	 * limit), g = x / (1 + e^(-alpha x)) * (y + 1) over n values (ggml's
	 * swiglu_oai). */
	void (*swiglu_oai)(struct backend *b, float *g, const float *u, int64_t n, float alpha,
			   float limit);
	/* x[i] += y[i] */
	void (*add)(struct backend *b, float *x, const float *y, int64_t n);
	/* y[t] = row tok[t] of the embedding table, dequantised, times scale */
	int (*embed)(struct backend *b, const struct wtensor *table, const int32_t *tok, int n,
		     float scale, float *y);
	/* x[t][i] += bias[i] for n rows of bias->ne0 */
	void (*add_bias)(struct backend *b, float *x, const struct wtensor *bias, int n);
	/* dst[i] = src[i] rounded through fp16, as floats (the query before
	 * its F16 product with K); dst may equal src */
	void (*round_fp16)(struct backend *b, float *dst, const float *src, int64_t n);
	/* dst[i] = src[i] as IEEE half bits, rounded to nearest even (the F16
	 * KV cache: half the bytes of floats, the same values round_fp16
	 * gives, so storing halves loses nothing) */
	void (*store_fp16)(struct backend *b, uint16_t *dst, const float *src, int64_t n);
	/* x[i] *= s */
	void (*scale)(struct backend *b, float *x, float s, int64_t n);
	/* bytes between two buffers of the backend, in op order */
	void (*copy)(struct backend *b, void *dst, const void *src, size_t bytes);

	/* ---- memory (set-up and the per-step logits) ---- */
	bool host_memory;     /* the backend's memory is ordinary host memory */
	/* *out = bytes of backend memory, or -ENOMEM with err set.  Set-up
	 * only: a device allocator may synchronise. */
	int (*alloc)(struct backend *b, void **out, size_t bytes, struct smk_err *err);
	void (*free_mem)(struct backend *b, void *p);
	/* host -> backend, ordered before the ops that follow; src may be
	 * reused on return */
	int (*upload)(struct backend *b, void *dst, const void *src, size_t bytes,
		      struct smk_err *err);
	/* backend -> host once every op queued before it has run; returns the
	 * first failure of any op since the last sync (and forgets it) */
	int (*download)(struct backend *b, void *dst, const void *src, size_t bytes,
			struct smk_err *err);
	/* wait for every queued op; the first failure as download */
	int (*sync)(struct backend *b, struct smk_err *err);

	/* ---- mixture of experts (optional: NULL makes the forward pass use
	 * copy and scale row by row, with the same results) ---- */
	/* dst row i = src row rows[i], i < n, rows of `width` floats; rows is
	 * int32 in the backend's memory.  An expert's input rows. */
	void (*gather_rows)(struct backend *b, float *dst, const float *src, const int32_t *rows,
			    int n, int64_t width);
	/* dst row rows[i] = src row i * scale[i] (one float multiplication a
	 * value, as scale), i < n; rows and scale in the backend's memory.  An
	 * expert's output rows, weighted, into their rows' slots. */
	void (*scatter_scaled_rows)(struct backend *b, float *dst, const float *src,
				    const int32_t *rows, const float *scale, int n, int64_t width);

	/* ---- several products of one input (optional: NULL makes the
	 * forward pass call matmul once per weight, with the same results) ---- */
	/* y[k] = w[k] x as matmul, for k < nw <= BACKEND_MATMULS weights of the
	 * same input width (the attention's q, k, v; the FFN's gate and up):
	 * each output equals matmul's bit for bit, but the input is prepared
	 * once per activation format and the threads meet once, not nw times. */
	int (*matmuls)(struct backend *b, const struct wtensor *const *w, int nw, const float *x, int n,
		       float *const *y);
	/* attention for each of n calls (the sequences of a batch, one layer:
	 * the same heads and head_dim), as one job: each output equals
	 * attention's for its call bit for bit, but the work of all the
	 * sequences is shared out at once - at batched decode each call is one
	 * query row, too little to split on its own. */
	void (*attentions)(struct backend *b, const struct attn_call *calls, int n);
};

#define BACKEND_MATMULS 4

struct backend {
	const struct backend_ops *ops;
	struct backend_limits limits;
};

/* The CPU backend.  *out owned by the caller; free with backend_free(). */
int backend_cpu_new(struct backend **out, const struct backend_limits *lim, struct smk_err *err);

/* ---- choosing a backend (backend_open.c) ----
 * The one place that knows which backends exist and how to pick one, so
 * that layers above never include a backend's own headers. */

enum backend_kind {
	BACKEND_AUTO = 0,  /* CUDA on gpu_id when num_gpus > 0 and a GPU is
			    * usable, else the CPU (saying why in the note) */
	BACKEND_CPU,
	BACKEND_CUDA,      /* CUDA or fail */
	BACKEND_CUDAEMU,   /* the CUDA kernels under the CPU emulator (tests) */
};

/* "auto", "cpu", "cuda", "cuda-emu". */
const char *backend_kind_name(enum backend_kind k);

struct wdev;

/* Open the backend `want` asks for (BACKEND_AUTO: see above; the
 * SMOKE_BACKEND environment variable - auto, cpu, cuda, cuda-emu -
 * overrides AUTO for diagnostics and tests).  *kind says what runs (never
 * AUTO); note gets one line saying which and why ("cuda backend on device
 * 0: NVIDIA H100 ...", "cpu backend (no usable GPU: ...)").  *out owned by
 * the caller (backend_free).  Returns 0 or a negative code with err set:
 * -EINVAL for a gpu_id no device has or a bad SMOKE_BACKEND, the CUDA
 * error when BACKEND_CUDA cannot start. */
int backend_open(struct backend **out, enum backend_kind *kind, enum backend_kind want,
		 int gpu_id, int num_gpus, const struct backend_limits *lim,
		 char *note, size_t note_len, struct smk_err *err);

/* The weight store's device tier for a device backend opened as kind
 * (CUDA or CUDAEMU).  *out owned by the caller (wdev_destroy, after the
 * store that uses it, before the backend). */
int backend_wdev_new(struct wdev **out, struct backend *be, enum backend_kind kind,
		     struct smk_err *err);

/* Device memory a device backend made with lim takes besides the
 * activations the caller allocates: the kernels' GELU table and the
 * quantised-activation buffer.  Counted in memory.gpu_memory. */
uint64_t backend_device_scratch_bytes(const struct backend_limits *lim);

static inline void backend_free(struct backend *b)
{
	if (b)
		b->ops->free(b);
}

static inline int backend_alloc(struct backend *b, void **out, size_t bytes, struct smk_err *err)
{
	return b->ops->alloc(b, out, bytes, err);
}

static inline void backend_free_mem(struct backend *b, void *p)
{
	b->ops->free_mem(b, p);
}

static inline int backend_upload(struct backend *b, void *dst, const void *src, size_t bytes,
				 struct smk_err *err)
{
	return b->ops->upload(b, dst, src, bytes, err);
}

static inline int backend_download(struct backend *b, void *dst, const void *src, size_t bytes,
				   struct smk_err *err)
{
	return b->ops->download(b, dst, src, bytes, err);
}

static inline int backend_sync(struct backend *b, struct smk_err *err)
{
	return b->ops->sync(b, err);
}

#endif
