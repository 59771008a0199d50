/* qtype.h - tensor element types as stored in GGUF files (ggml type ids).
 *
 * A quantised tensor row is a sequence of fixed-size blocks; each block holds
 * `block_elems` values in `block_bytes` bytes.  This module knows the layouts
 * (documented in qtype.c next to each decoder) and converts rows to float.
 * The SIMD dot products that the compute backend runs on these layouts live in
 * compute/cpu/qdot*.c; the scalar code here is their reference.
 */
#ifndef SMK_QUANT_QTYPE_H
#define SMK_QUANT_QTYPE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "util/err.h"

/* Values are the ggml type ids written in GGUF tensor infos. */
enum qtype {
	QTYPE_F32 = 0,
	QTYPE_F16 = 1,
	QTYPE_Q4_0 = 2,
	QTYPE_Q4_1 = 3,
	QTYPE_Q5_0 = 6,
	QTYPE_Q5_1 = 7,
	QTYPE_Q8_0 = 8,
	QTYPE_Q8_1 = 9,
	QTYPE_Q2_K = 10,
	QTYPE_Q3_K = 11,
	QTYPE_Q4_K = 12,
	QTYPE_Q5_K = 13,
	QTYPE_Q6_K = 14,
	QTYPE_Q8_K = 15,
	QTYPE_BF16 = 30,
	QTYPE_MXFP4 = 39,
	QTYPE_COUNT = 40, /* one past the largest id we know */
};

struct qtype_info {
	const char *name;        /* "Q4_K" */
	uint32_t block_elems;    /* values per block (1 for plain floats) */
	uint32_t block_bytes;    /* bytes per block */
	/* Row decoder, n a multiple of block_elems; NULL if we can size the type
	 * (so a file holding it can still be opened) but not compute with it. */
	void (*dequant_row)(const void *src, float *dst, int64_t n);
};

/* Info for a ggml type id, or NULL if the id is unknown. */
const struct qtype_info *qtype_info(uint32_t id);

/* Name for logs/errors; "unknown" for unknown ids. */
const char *qtype_name(uint32_t id);

/* Bytes of a row of n values: 0 on success, -EINVAL (with message) if the type
 * is unknown, n is not a multiple of the block, or the size overflows. */
int qtype_row_bytes(uint32_t id, uint64_t n, uint64_t *out, struct smk_err *err);

/* True if dequant_row and the CPU dot products exist for this type. */
bool qtype_can_compute(uint32_t id);

/* Decode a row of n values of type id into dst (n a multiple of the block).
 * Returns 0, or -EINVAL if the type cannot be decoded or n is not a multiple
 * of its block (checked here, unlike the raw dequant_row pointers). */
int qtype_dequant_row(uint32_t id, const void *src, float *dst, int64_t n);

/* ---- Block layouts ---------------------------------------------------------
 * The packed on-disk block structs, shared by the decoders in qtype.c and the
 * dot products in compute/cpu.  Blocks in a tensor are only byte-aligned
 * (a row of Q4_0 blocks is 18-byte strided from a 32-byte aligned start), so
 * the structs are packed: read their multi-byte fields by value (the compiler
 * emits unaligned-safe loads) or with memcpy, never through a pointer to the
 * field.  fp16 fields are IEEE half bit patterns (util/fp16.h).  The bit
 * layout of each block is documented next to its decoder in qtype.c. */
#define QTYPE_QK 32     /* values per block of the 32-wide formats */
#define QTYPE_QK_K 256  /* values per K-quant super-block */
#define QTYPE_K_SCALE_SIZE 12

#define QTYPE_PACKED __attribute__((packed))

struct QTYPE_PACKED qtype_block_q4_0 { uint16_t d; uint8_t qs[16]; };
struct QTYPE_PACKED qtype_block_q4_1 { uint16_t d, m; uint8_t qs[16]; };
struct QTYPE_PACKED qtype_block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct QTYPE_PACKED qtype_block_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct QTYPE_PACKED qtype_block_q8_0 { uint16_t d; int8_t qs[32]; };
struct QTYPE_PACKED qtype_block_q8_1 { uint16_t d, s; int8_t qs[32]; };
/* MXFP4: one E8M0 exponent byte for 32 4-bit E2M1 values (table below). */
struct QTYPE_PACKED qtype_block_mxfp4 { uint8_t e; uint8_t qs[16]; };
struct QTYPE_PACKED qtype_block_q2_K {
	uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin;
};
struct QTYPE_PACKED qtype_block_q3_K {
	uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d;
};
struct QTYPE_PACKED qtype_block_q4_K {
	uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128];
};
struct QTYPE_PACKED qtype_block_q5_K {
	uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128];
};
struct QTYPE_PACKED qtype_block_q6_K {
	uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d;
};
/* Q8_K is ggml's activation format for the K-quant dot products (never a
 * weight type in practice): f32 scale, 256 int8 values, and the sums of each
 * 16-value group (so the K-quants' "min" terms need no pass over qs). */
struct QTYPE_PACKED qtype_block_q8_K {
	float d; int8_t qs[256]; int16_t bsums[16];
};

_Static_assert(sizeof(struct qtype_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(struct qtype_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(struct qtype_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(struct qtype_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(struct qtype_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(struct qtype_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(struct qtype_block_mxfp4) == 17, "mxfp4 layout");
_Static_assert(sizeof(struct qtype_block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(struct qtype_block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(struct qtype_block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(struct qtype_block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(struct qtype_block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(struct qtype_block_q8_K) == 292, "q8_K layout");

/* The MXFP4 values of the 16 nibbles (ggml's kvalues_mxfp4): the E2M1
 * values 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives, doubled so that
 * they are integers and the integer dot products apply; qtype_e8m0_half()
 * halves the block scale to compensate.  Nibble 8 (E2M1 -0) is 0.
 * Defined in qtype.c; 16 bytes, so SIMD code can load it as one table. */
extern const int8_t qtype_mxfp4_values[16];

/* Half of the E8M0 scale 2^(e-127), i.e. 2^(e-128), as a float built from
 * its bits: e >= 2 is the normal float with biased exponent e-1; e = 0 and
 * 1 (2^-128, 2^-127) are the subnormals 0x00200000 << e.  e = 255, NaN in
 * the OCP MX spec, is not special-cased (it gives 2^127), as in ggml. */
static inline float qtype_e8m0_half(uint8_t e)
{
	const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
	float f;
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/* The 6-bit (scale, min) pair of sub-block j (0..7) of a Q4_K/Q5_K block,
 * unpacked from the 12 packed scale bytes (layout in qtype.c). */
static inline void qtype_k4_scale_min(const uint8_t *q, int j, uint8_t *sc,
				      uint8_t *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (uint8_t)((q[j + 4] & 15) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/* The 16 signed 6-bit scales of a Q3_K block (values -32..31), unpacked from
 * its 12 packed scale bytes (layout in qtype.c). */
static inline void qtype_k3_scales(const uint8_t *q, int8_t out[16])
{
	for (int j = 0; j < 16; j++) {
		int lo = j < 8 ? q[j] & 15 : q[j - 8] >> 4;
		int hi = (q[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
		out[j] = (int8_t)((lo | hi << 4) - 32);
	}
}

#endif
