/* rope.c - YaRN's host-side numbers (backend.h), shared by the CPU and
 * CUDA backends and by the plans that fill struct rope_params. */
#include "compute/backend.h"

#include <math.h>

/* The dim at which a frequency makes n_rot rotations over n_ctx_orig
 * positions, in ggml's float operations. */
static float corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base)
{
	return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2 * (float)M_PI)) /
	       (2 * logf(base));
}

void rope_yarn_corr_dims(int n_dims, int n_ctx_orig, float base, float beta_fast,
			 float beta_slow, float out[2])
{
	const float start = floorf(corr_dim(n_dims, n_ctx_orig, beta_fast, base));
	const float end = ceilf(corr_dim(n_dims, n_ctx_orig, beta_slow, base));
	out[0] = start > 0 ? start : 0;
	out[1] = end < (float)(n_dims - 1) ? end : (float)(n_dims - 1);
}

float rope_yarn_mscale(const struct rope_params *rp)
{
	float m = rp->attn_factor != 0.0f ? rp->attn_factor : 1.0f;
	if (rp->ext_factor != 0.0f)
		/* ggml: mscale *= 1.0f + 0.1f * logf(1.0f / freq_scale), which
		 * its FMA build contracts */
		m = m * __builtin_fmaf(0.1f, logf(1.0f / rp->freq_scale), 1.0f);
	return m;
}
