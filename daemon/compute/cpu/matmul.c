/* matmul.c - quantised weight x float activation products on the CPU.
 *
 * As in llama.cpp, weights are never dequantised: each activation row is
 * quantised once to the format the weight type's integer dot product takes
 * (Q8_0 or Q8_K), then every weight row is dotted with it.  Threads split the
 * weight rows into contiguous ranges, so each thread streams its own part of
 * the matrix once and reuses it for every activation row in the batch.
 * Where the type has a tile kernel (qdot_get_tile), a tile of weight rows
 * times every activation row is one call, the tile's weight blocks
 * unpacked once for the whole batch (for one activation row only where
 * qdot_tile_for_one_row says the tile is the better kernel there too); else, where it has a several-activation kernel
 * (qdot_get4), a weight row is decoded once per four activation rows
 * instead of once per row.  Either way each output equals the single-row
 * kernel's bit for bit.
 *
 * cpu_matmuls takes several weights on one input (q, k and v; gate and
 * up) as one job: the input is prepared once per activation format they
 * need, and the threads split all their rows at once, so the pool meets
 * twice (prepare, dot) instead of twice per weight - at decode, where a
 * 640-wide matrix is a few microseconds of work, the meeting is a cost.
 */
#include "compute/cpu/cpu_backend.h"
#include "compute/cpu/qdot.h"
#include "quant/qtype.h"

#include <stdatomic.h>
#include <string.h>

/* One weight's part of a job: its kernels and where its rows sit in the
 * job's row space (the weights' rows one after another). */
struct mm_weight {
	const struct wtensor *w;
	float *y;
	const void *act;   /* its prepared input rows, act_row bytes apart */
	size_t act_row;
	qdot_fn dot;
	qdot_rows4_fn rows4; /* one activation row: four weight rows a call (NULL: dot) */
	qdot4_fn dot4;     /* NULL: loop over dot */
	qdot_tile_fn tile; /* NULL: dot4 or dot */
	int tile_rows;     /* weight rows per tile call */
	bool tile_in_place; /* qdot_tile_in_place: asks for the next tile's
			     * rows itself, and may be given its rows again */
	int token_block;    /* activation rows a block (in_place_blocks) */
	int64_t row0;      /* its first row in the job's row space */
};

struct matmul_job {
	const float *x;
	int n;
	int nw;
	struct mm_weight mw[BACKEND_MATMULS];
	int64_t rows;      /* all the weights' rows */
	int64_t chunk;     /* rows a batch's thread takes at a time (dot_share) */
	atomic_llong next_chunk;
	/* the inputs to prepare: weight index per distinct activation format */
	int n_prep;
	int prep[BACKEND_MATMULS];
};

/* The inputs' rows, split among the threads two at a time: a tile's rows
 * come in pairs, the even row prepared first (qdot_prepare_tile). */
static void prepare_share(void *ctx, int ith, int nth)
{
	struct matmul_job *j = ctx;
	const int64_t pairs = (j->n + 1) / 2;
	int64_t lo, hi;
	cpu_share(pairs * j->n_prep, ith, nth, &lo, &hi);
	for (int64_t u = lo; u < hi; u++) {
		const struct mm_weight *m = &j->mw[j->prep[u / pairs]];
		const int64_t ne0 = m->w->ne0;
		const int t0 = (int)(u % pairs) * 2;
		for (int t = t0; t < t0 + 2 && t < j->n; t++) {
			if (m->tile || m->rows4)
				qdot_prepare_tile(m->w->type, j->x + t * ne0, (void *)m->act, m->act_row, t, ne0);
			else
				qdot_prepare(m->w->type, j->x + t * ne0, (char *)m->act + t * m->act_row, ne0);
		}
	}
}

/* Ask for the lines of [p, p + bytes) ahead of use: weight rows a decode
 * streams from memory (dot_rows), a batch's next tile.  Locality 1
 * (prefetcht2), the farthest level: on Zen 4 a prefetcht0 held L1's miss
 * buffers and stalled the row loop (1-thread tg128 of the default model
 * 50 -> 58 tok/s as prefetcht1), and prefetcht2 streamed faster still
 * (three alternating pairs, 1 thread: default model 68.3 -> 74.7 tok/s,
 * Q8_0 55.9 -> 63.0; 2 threads 99.8 -> 108.9, 86.8 -> 92.1); prefetchnta
 * and prefetcht0 were both slower. */
static inline void prefetch_rows(const void *p, size_t bytes)
{
	for (size_t o = 0; o < bytes; o += 64)
		__builtin_prefetch((const char *)p + o, 0, 1);
}

/* How far ahead a decode's row loop prefetches (see dot_rows). */
#define PREFETCH_BYTES 8192

/* Weight rows per inner tile: with many activation rows, a tile of weight
 * rows stays in L1/L2 while every activation row passes over it. */
#define ROW_TILE 16

/* The bytes of weight rows, and of activation rows, that a long batch's
 * in-place tiles work through at a time (in_place_blocks). */
#define BLOCK_BYTES (256 << 10)

/* Rows [lo, hi) of a weight whose tile reads the rows in place
 * (qdot_tile_in_place) times a batch longer than m->token_block: a block
 * of rows (BLOCK_BYTES) against a block of activation rows (the same) at
 * a time, so that both stay in L2 while the tiles pass over them, instead
 * of every tile streaming the whole batch's activation rows from L3 (a
 * 512-token batch of 640 floats is 1.3 MB a tile).  Zen 4, 2-thread pp512
 * of the F16 model +3% (six alternating pairs; at 1 thread unchanged:
 * the two cores had shared L3's bandwidth).  Tiles that unpack their rows
 * would unpack them again for every block, so they take the whole batch. */
static void in_place_blocks(const struct matmul_job *j, const struct mm_weight *m, int64_t lo, int64_t hi)
{
	const struct wtensor *w = m->w;
	const int rt = m->tile_rows;
	int64_t rb = BLOCK_BYTES / (int64_t)w->row_bytes / rt * rt;
	rb = rb < rt ? rt : rb;
	for (int64_t b0 = lo; b0 < hi; b0 += rb) {
		const int64_t b1 = b0 + rb < hi ? b0 + rb : hi;
		for (int t0 = 0; t0 < j->n; t0 += m->token_block) {
			const int nt = j->n - t0 < m->token_block ? j->n - t0 : m->token_block;
			for (int64_t r0 = b0; r0 < b1; r0 += rt) {
				const int64_t r1 = r0 + rt < b1 ? r0 + rt : b1;
				m->tile(wtensor_row(w, r0), (size_t)w->row_bytes, (int)(r1 - r0),
					(const char *)m->act + (size_t)t0 * m->act_row, m->act_row, nt, w->ne0,
					m->y + (int64_t)t0 * w->ne1 + r0, w->ne1);
			}
		}
	}
}

/* Rows [lo, hi) of one weight times every input row. */
static void dot_rows(const struct matmul_job *j, const struct mm_weight *m, int64_t lo, int64_t hi)
{
	const struct wtensor *w = m->w;
	if (j->n == 1 && !m->tile) {
		/* Decode streams the rows from memory, one after another.
		 * The range's first PREFETCH_BYTES at once, for every kernel:
		 * a small matrix (a layer's) otherwise begins with misses
		 * taken one after another. */
		const int64_t ahead = PREFETCH_BYTES / (int64_t)w->row_bytes + 1;
		const int64_t first = lo + ahead < hi ? lo + ahead : hi;
		prefetch_rows(wtensor_row(w, lo), (size_t)(first - lo) * w->row_bytes);
		int64_t r = lo;
		if (!m->rows4) {
			/* A single-row kernel (the K-quants, Q4_1, Q5_1,
			 * MXFP4) asks for its row 2 KiB ahead itself
			 * (QDOT_PREFETCH) where that measured faster, or
			 * leaves it to the hardware prefetcher (qdot_avx2.h's
			 * prefetch_ahead says which); a second stream, a burst every row
			 * here, held the miss buffers: without it the
			 * 8B-shaped model's Q4_K/Q6_K decode went 3.2 -> 3.5
			 * tok/s at 1 thread and 6.1 -> 6.9 at 2 (alternating
			 * runs), the default model's +2% at 1 thread (its
			 * output and down matrices; with no first burst
			 * either, -7%). */
			for (; r < hi; r++)
				m->y[r] = m->dot(wtensor_row(w, r), m->act, w->ne0);
			return;
		}
		/* The four-row kernel (Q4_0, Q5_0, Q8_0) asks for the rows
		 * ahead itself, spread over its work (qdot_avx2.c's
		 * r4_ahead: a burst of all their lines here before each
		 * call held the miss buffers, 25% slower).  The last few
		 * rows alone, each asked for PREFETCH_BYTES ahead. */
		for (; r + 4 <= hi; r += 4)
			m->rows4(wtensor_row(w, r), (size_t)w->row_bytes, m->act, w->ne0, m->y + r);
		for (; r < hi; r++) {
			if (r + ahead < hi)
				prefetch_rows(wtensor_row(w, r + ahead), w->row_bytes);
			m->y[r] = m->dot(wtensor_row(w, r), m->act, w->ne0);
		}
		return;
	}
	const int rt = m->tile ? m->tile_rows : ROW_TILE;
	if (m->tile_in_place && j->n > m->token_block) {
		in_place_blocks(j, m, lo, hi);
		return;
	}
	for (int64_t r0 = lo; r0 < hi; r0 += rt) {
		int64_t r1 = r0 + rt < hi ? r0 + rt : hi;
		if (m->tile) {
			/* the next tile's rows on their way while this one computes:
			 * its first pass over them would otherwise wait on
			 * memory, read as a few interleaved streams that the
			 * hardware prefetcher follows badly - the cost that
			 * matters for a short batch (Zen 4, 1-thread batched
			 * decode of 16 sequences, F16 model 105 -> 116 tok/s).
			 * Not for one activation row: its tile (F16) streams the
			 * rows in address order, and this prefetch got in the way
			 * (tg128 43 -> 34).  Nor where the tile asks for them
			 * itself, spread over its passes (the float tiles:
			 * qdot_tile_in_place), which beat this burst at the
			 * start of the tile - F16 batched decode of 16, 1 thread,
			 * 101 -> 130-147 tok/s. */
			if (j->n > 1 && r1 < hi && !m->tile_in_place) {
				const int64_t r2 = r1 + rt < hi ? r1 + rt : hi;
				prefetch_rows(wtensor_row(w, r1), (size_t)(r2 - r1) * w->row_bytes);
			}
			m->tile(wtensor_row(w, r0), (size_t)w->row_bytes, (int)(r1 - r0), m->act,
				m->act_row, j->n, w->ne0, m->y + r0, w->ne1);
			continue;
		}
		if (m->dot4) {
			/* Up to four activation rows per weight-row pass: each
			 * weight block is unpacked once for all of them (the
			 * results equal the single kernel's bit for bit). */
			for (int t0 = 0; t0 < j->n; t0 += 4) {
				const int na = j->n - t0 < 4 ? j->n - t0 : 4;
				const void *a[4];
				for (int k = 0; k < 4; k++)
					a[k] = (const char *)m->act +
					       (size_t)(t0 + (k < na ? k : 0)) * m->act_row;
				float *y0 = m->y + (int64_t)t0 * w->ne1;
				for (int64_t r = r0; r < r1; r++) {
					float o[4];
					m->dot4(wtensor_row(w, r), a, na, w->ne0, o);
					for (int k = 0; k < na; k++)
						y0[(int64_t)k * w->ne1 + r] = o[k];
				}
			}
			continue;
		}
		for (int t = 0; t < j->n; t++) {
			const void *a = (const char *)m->act + t * m->act_row;
			float *yt = m->y + (int64_t)t * w->ne1;
			for (int64_t r = r0; r < r1; r++)
				yt[r] = m->dot(wtensor_row(w, r), a, w->ne0);
		}
	}
}

/* Rows [lo, hi) of the job's row space, which may span the end of one
 * weight and the start of the next. */
static void dot_range(const struct matmul_job *j, int64_t lo, int64_t hi)
{
	for (int k = 0; k < j->nw; k++) {
		const struct mm_weight *m = &j->mw[k];
		const int64_t a = lo > m->row0 ? lo : m->row0;
		const int64_t e = m->row0 + m->w->ne1;
		const int64_t b = hi < e ? hi : e;
		if (a < b)
			dot_rows(j, m, a - m->row0, b - m->row0);
	}
}

/* Chunks per thread of a batch's job: enough that the last one taken
 * leaves little for the others to wait on. */
#define CHUNKS_PER_THREAD 16

/* Activation rows from which a job's threads take chunks (dot_share). */
#define CHUNKED_BATCH 8

/* Decode and a batch of a few rows stream the weights from memory: each
 * thread one contiguous range, its rows in address order (dot_rows'
 * prefetch runs ahead within it; chunks cost the 8B-shaped model's
 * batched decode of 4 sequences 3%).  From CHUNKED_BATCH rows on, where
 * the compute is what takes the time: chunks of the row space taken one
 * at a time until none is left, so that a thread on a slower core - a
 * busy SMT sibling, a neighbour's load on a shared host, an efficiency
 * core - takes fewer: with equal halves, 2-thread prefill of the F16 model
 * waited 10% of its time on the slower core (its thread ran the same rows
 * 20% slower).  Every output is the same kernel's whichever thread
 * computes it. */
static void dot_share(void *ctx, int ith, int nth)
{
	struct matmul_job *j = ctx;
	if (j->n < CHUNKED_BATCH || nth == 1) {
		int64_t lo, hi;
		cpu_share(j->rows, ith, nth, &lo, &hi);
		dot_range(j, lo, hi);
		return;
	}
	for (;;) {
		const int64_t lo = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed) * j->chunk;
		if (lo >= j->rows)
			return;
		dot_range(j, lo, lo + j->chunk < j->rows ? lo + j->chunk : j->rows);
	}
}

int cpu_matmuls(struct backend *b, const struct wtensor *const *w, int nw, const float *x, int n,
		float *const *y)
{
	struct cpu_backend *cb = cpu_of(b);
	if (nw < 1 || nw > BACKEND_MATMULS || n <= 0 || n > b->limits.max_rows)
		return -EINVAL;
	struct matmul_job j = { .x = x, .n = n };
	size_t act_used = 0;
	for (int k = 0; k < nw; k++, j.nw++) {
		struct mm_weight *m = &j.mw[k];
		m->w = w[k];
		m->y = y[k];
		if (!(m->dot = qdot_get(w[k]->type)) || w[k]->ne0 > b->limits.max_cols ||
		    w[k]->ne0 != w[0]->ne0)
			return -EINVAL;
		m->row0 = j.rows;
		m->dot4 = n > 1 ? qdot_get4(w[k]->type) : NULL;
		m->rows4 = n == 1 ? qdot_get_rows4(w[k]->type) : NULL;
		if ((n == 1 && !qdot_tile_for_one_row(w[k]->type)) ||
		    !(m->tile = qdot_get_tile(w[k]->type, w[k]->ne0, &m->tile_rows)))
			m->tile_rows = 0;
		m->tile_in_place = m->tile && qdot_tile_in_place(w[k]->type);
		const uint32_t at = qdot_act_type(w[k]->type);
		if (at == QTYPE_F32) {
			m->act = x;
			m->act_row = (size_t)w[k]->ne0 * sizeof(float);
		} else {
			/* weights that take the same activation format share its
			 * rows (qdot_prepare's bytes depend on that format alone;
			 * rows with a tile's side serve the kernels without one) */
			size_t row = qdot_act_row_bytes(w[k]->type, w[k]->ne0);
			if (m->tile || m->rows4) {
				/* their rows: qdot_prepare_tile's */
				const size_t tr = qdot_tile_act_row_bytes(w[k]->type, w[k]->ne0);
				/* the buffer is sized for tile rows (ops.c); were the
				 * kernels switched since, the plain rows and neither */
				if (tr * (size_t)n <= cb->act_bytes)
					row = tr;
				else {
					m->tile = NULL;
					m->rows4 = NULL;
				}
			}
			int same = -1;
			for (int p = 0; p < j.n_prep && same < 0; p++)
				if (qdot_act_type(w[j.prep[p]]->type) == at && j.mw[j.prep[p]].act_row >= row)
					same = j.prep[p];
			if (same >= 0) {
				m->act = j.mw[same].act;
				m->act_row = j.mw[same].act_row;
			} else {
				m->act_row = row;
				if (m->act_row * (size_t)n > cb->act_bytes - act_used) {
					/* the buffer holds one format's rows of the
					 * widest input: the rest is a job of its own */
					if (k == 0)
						return -EINVAL;
					break;
				}
				m->act = (char *)cb->act + act_used;
				act_used += m->act_row * (size_t)n;
				j.prep[j.n_prep++] = k;
			}
		}
		/* a multiple of 4 (the tiles' groups), and of 2 (a pair's side
		 * sits in its even row) */
		m->token_block = (int)(BLOCK_BYTES / m->act_row) & ~3;
		m->token_block = m->token_block < 4 ? 4 : m->token_block;
		j.rows += w[k]->ne1;
	}
	if (j.n_prep) {
		if (n == 1 && j.n_prep == 1)
			prepare_share(&j, 0, 1);
		else
			tpool_run(cb->pool, prepare_share, &j);
	}
	/* a batch's chunks: whole tiles (of the first weight's), about
	 * CHUNKS_PER_THREAD a thread */
	const int64_t unit = j.mw[0].tile_rows > 0 ? j.mw[0].tile_rows : ROW_TILE;
	const int64_t want = j.rows / ((int64_t)tpool_size(cb->pool) * CHUNKS_PER_THREAD);
	j.chunk = (want + unit - 1) / unit * unit;
	if (j.chunk < unit)
		j.chunk = unit;
	atomic_init(&j.next_chunk, 0);
	tpool_run(cb->pool, dot_share, &j);
	return j.nw < nw ? cpu_matmuls(b, w + j.nw, nw - j.nw, x, n, y + j.nw) : 0;
}

int cpu_matmul(struct backend *b, const struct wtensor *w, const float *x, int n, float *y)
{
	return cpu_matmuls(b, &w, 1, x, n, &y);
}
