/* tests/emulated/avx512_probe.c - proves that a program really runs on an
 * AVX-512 CPU (scripts/run-emulated-avx512, docs/avx512-emulation.md).
 *
 * Prints the CPUID flags the kernels will depend on, then runs one VNNI
 * (_mm512_dpbusd_epi32) and one _mm512_fmadd_ps on known inputs and checks
 * every lane.  Exit 0 when all match, 1 on a mismatch, 2 when a required
 * flag is missing (the instructions would fault).  SMOKE_PROBE_WRONG=1 in
 * the environment, or "--wrong" as argument, expects a deliberately wrong
 * value so that the harness can show that a failure comes through as exit 1.
 *
 * Static, built with -mavx512f -mavx512bw -mavx512vl -mavx512vnni: it runs
 * as /init's child in an initramfs that holds no libc.
 */
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct flag {
	const char *name;
	unsigned leaf, subleaf;
	char reg; /* 'b', 'c' or 'd' */
	unsigned bit;
	int required;
};

/* Intel SDM vol. 2A, CPUID leaf 07H (sub-leaf 0 and 1). */
static const struct flag flags[] = {
	{"AVX512F", 7, 0, 'b', 16, 1},
	{"AVX512DQ", 7, 0, 'b', 17, 0},
	{"AVX512IFMA", 7, 0, 'b', 21, 0},
	{"AVX512CD", 7, 0, 'b', 28, 0},
	{"AVX512BW", 7, 0, 'b', 30, 1},
	{"AVX512VL", 7, 0, 'b', 31, 1},
	{"AVX512_VBMI", 7, 0, 'c', 1, 0},
	{"AVX512_VBMI2", 7, 0, 'c', 6, 0},
	{"AVX512_VNNI", 7, 0, 'c', 11, 1},
	{"AVX512_BITALG", 7, 0, 'c', 12, 0},
	{"AVX512_VPOPCNTDQ", 7, 0, 'c', 14, 0},
	{"AVX512_VP2INTERSECT", 7, 0, 'd', 8, 0},
	{"AVX512_FP16", 7, 0, 'd', 23, 0},
	{"AVX_VNNI", 7, 1, 'a', 4, 0},
	{"AVX512_BF16", 7, 1, 'a', 5, 0},
};

static int check_flags(void)
{
	int missing = 0;
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
		const struct flag *f = &flags[i];
		unsigned r[4] = {0}; /* a, b, c, d */
		if (!__get_cpuid_count(f->leaf, f->subleaf, &r[0], &r[1], &r[2], &r[3]))
			memset(r, 0, sizeof r);
		unsigned v = r[f->reg == 'a' ? 0 : f->reg == 'b' ? 1 : f->reg == 'c' ? 2 : 3];
		int on = (v >> f->bit) & 1;
		printf("cpuid %-20s %s%s\n", f->name, on ? "yes" : "no",
		       f->required && !on ? "  (required)" : "");
		if (f->required && !on)
			missing++;
	}
	return missing;
}

/* dpbusd: each 32-bit lane adds the four products of unsigned bytes of a
 * and signed bytes of b to the accumulator; computed here in scalar code. */
static int check_dpbusd(int wrong)
{
	uint8_t a[64];
	int8_t b[64];
	int32_t acc[16], out[16];
	for (int i = 0; i < 64; i++) {
		a[i] = (uint8_t)(200 + i);       /* above 127: unsigned matters */
		b[i] = (int8_t)(i % 2 ? -i : i); /* both signs */
	}
	for (int i = 0; i < 16; i++)
		acc[i] = 1000 * i - 7000;
	__m512i r = _mm512_dpbusd_epi32(_mm512_loadu_si512(acc), _mm512_loadu_si512(a),
					_mm512_loadu_si512(b));
	_mm512_storeu_si512(out, r);
	int bad = 0;
	for (int l = 0; l < 16; l++) {
		int32_t want = acc[l];
		for (int k = 0; k < 4; k++)
			want += (int32_t)a[4 * l + k] * (int32_t)b[4 * l + k];
		if (wrong && l == 5)
			want += 1;
		if (out[l] != want) {
			printf("dpbusd lane %d: got %d, want %d\n", l, out[l], want);
			bad++;
		}
	}
	printf("vpdpbusd %s\n", bad ? "MISMATCH" : "ok");
	return bad;
}

/* Small integers in float: every product and sum is exact, so the fused
 * result equals the scalar one bit for bit. */
static int check_fmadd(void)
{
	float a[16], b[16], c[16], out[16];
	for (int i = 0; i < 16; i++) {
		a[i] = (float)(i - 8);
		b[i] = (float)(3 * i + 1);
		c[i] = (float)(100 - i);
	}
	__m512 r = _mm512_fmadd_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(b), _mm512_loadu_ps(c));
	_mm512_storeu_ps(out, r);
	int bad = 0;
	for (int l = 0; l < 16; l++) {
		float want = a[l] * b[l] + c[l];
		if (out[l] != want) {
			printf("fmadd lane %d: got %g, want %g\n", l, out[l], want);
			bad++;
		}
	}
	printf("vfmadd231ps %s\n", bad ? "MISMATCH" : "ok");
	return bad;
}

int main(int argc, char **argv)
{
	const char *env = getenv("SMOKE_PROBE_WRONG");
	int wrong = (argc > 1 && strcmp(argv[1], "--wrong") == 0) || (env && *env == '1');
	if (check_flags()) {
		printf("avx512_probe: a required CPUID flag is missing\n");
		return 2;
	}
	int bad = check_dpbusd(wrong) + check_fmadd();
	printf("avx512_probe: %s\n", bad ? "FAIL" : "PASS");
	return bad ? 1 : 0;
}
