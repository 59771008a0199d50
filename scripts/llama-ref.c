// llama-ref: tiny reference driver over llama.cpp's libllama, used only to
// produce test fixtures (tests/fixtures/reference/). Not part of smoke.
// Built by scripts/build-llama-cpp; driven by scripts/make-reference-fixtures.
//
// Input (stdin): one string per line, hex-encoded UTF-8 bytes (an empty line is
// the empty string). Output (stdout): one JSON object per input line.
//
//   llama-ref info     MODEL
//   llama-ref tokenize MODEL            < hexlines
//   llama-ref generate MODEL N_PREDICT [N_THREADS [N_CTX]] < hexlines
//   llama-ref dump     MODEL N_GEN OUTDIR [N_THREADS] < hexline
//
// tokenize: ids for the four (add_special, parse_special) combinations, plus the
//   piece (hex) of every id of the (1,1) variant.
// generate: prompt tokenized with add_special=1, parse_special=1 (like
//   llama-simple); then greedy decoding: argmax over the raw logits of the last
//   position, first index wins ties. Prompt is decoded as one batch, then one
//   token per llama_decode. Flash attention disabled, KV cache default (F16).
//   Stops after N_PREDICT tokens or after emitting an end-of-generation token
//   (the EOG token itself is recorded). Fresh context per prompt.
//   Per step: chosen id, its logit, the top-5 (id, logit).
// dump: as generate for the first input line (N_GEN greedy tokens after the
//   prompt), and in every llama_decode an eval callback copies the graph
//   tensors whose names (without the "-<layer>" suffix) are listed in the
//   environment variable LLAMA_REF_DUMP (comma-separated; default below) to
//   OUTDIR/<step>-<seq>-<name>.f32 (F32 values, F16 tensors widened; only
//   contiguous tensors).  OUTDIR/index.jsonl gets one line per file:
//   {"step":S,"name":"attn_norm-3","ne":[ne0,ne1,ne2,ne3],"file":"..."}.
//   Step 0 is the prompt batch.  Used to find the first op where smoke's
//   numerics leave llama.cpp's (docs/reference.md).
//
// Every mode sets GGML_CPU_TILED_MM=0 unless the environment sets it: ggml's
// tiled K-quant GEMM (batches of >= 8 rows) sums in another order than the
// vec_dot kernels, and the reference numerics are the vec_dot ones (see
// scripts/build-llama-cpp, flavour "ref").
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/stat.h>
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"

static void quiet_log(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool no_progress(float p, void *ud) { (void)p; (void)ud; return true; }

static void put_hex(const char *buf, int n) {
    static const char *h = "0123456789abcdef";
    putchar('"');
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        putchar(h[c >> 4]);
        putchar(h[c & 15]);
    }
    putchar('"');
}

static int unhex(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// reads one hex line; returns malloc'd bytes (NUL-terminated) and length, or NULL at EOF
static char *read_hex_line(int *out_len) {
    static char *line = NULL;
    static size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) return NULL;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    char *out = malloc((size_t)n / 2 + 1);
    int k = 0;
    for (ssize_t i = 0; i + 1 < n; i += 2) {
        int a = unhex(line[i]), b = unhex(line[i + 1]);
        if (a < 0 || b < 0) { fprintf(stderr, "llama-ref: bad hex input\n"); exit(2); }
        out[k++] = (char)(a * 16 + b);
    }
    out[k] = 0;
    *out_len = k;
    return out;
}

static llama_token *tokenize(const struct llama_vocab *vocab, const char *s, int len,
                             bool add_special, bool parse_special, int *n_out) {
    int n = -llama_tokenize(vocab, s, len, NULL, 0, add_special, parse_special);
    if (n < 0) n = -n;  // returned positive (0 tokens fit in 0 slots)
    llama_token *t = malloc(sizeof(llama_token) * (size_t)(n + 1));
    int r = llama_tokenize(vocab, s, len, t, n + 1, add_special, parse_special);
    if (r < 0) { fprintf(stderr, "llama-ref: tokenize failed\n"); exit(1); }
    *n_out = r;
    return t;
}

static void put_ids(const llama_token *t, int n) {
    putchar('[');
    for (int i = 0; i < n; i++) printf("%s%d", i ? "," : "", t[i]);
    putchar(']');
}

static void put_piece(const struct llama_vocab *vocab, llama_token id) {
    char buf[512];
    int n = llama_token_to_piece(vocab, id, buf, sizeof buf, 0, true);
    if (n < 0) n = 0;
    put_hex(buf, n);
}

// ---- dump mode: the eval callback ----------------------------------------

struct dump_ctx {
    const char *dir;
    const char *names;  // ",a,b,c," (bracketed by commas for strstr)
    int step;
    int seq;            // tensors dumped so far in this step (names repeat)
    FILE *index;
    float *buf;
    size_t cap;
};

// Is t's base name (its name without a trailing "-<digits>") in the list?
static bool dump_wanted(const struct dump_ctx *d, const struct ggml_tensor *t) {
    char base[GGML_MAX_NAME + 2];
    const char *name = ggml_get_name(t);
    size_t n = strlen(name);
    size_t k = n;
    while (k > 0 && name[k - 1] >= '0' && name[k - 1] <= '9') k--;
    if (k > 0 && k < n && name[k - 1] == '-') n = k - 1;
    if (n == 0 || n >= sizeof(base) - 2) return false;
    base[0] = ',';
    memcpy(base + 1, name, n);
    base[n + 1] = ',';
    base[n + 2] = 0;
    return strstr(d->names, base) != NULL;
}

static bool dump_cb(struct ggml_tensor *t, bool ask, void *ud) {
    struct dump_ctx *d = ud;
    bool want = dump_wanted(d, t) && ggml_is_contiguous(t) &&
                (t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16);
    if (ask || !want) return true;
    const int64_t n = ggml_nelements(t);
    if ((size_t)n > d->cap) {
        d->cap = (size_t)n;
        d->buf = realloc(d->buf, d->cap * sizeof(float));
        if (!d->buf) { fprintf(stderr, "llama-ref: out of memory\n"); exit(1); }
    }
    if (t->type == GGML_TYPE_F32) {
        ggml_backend_tensor_get(t, d->buf, 0, (size_t)n * sizeof(float));
    } else {
        ggml_fp16_t *h = malloc((size_t)n * sizeof(ggml_fp16_t));
        if (!h) { fprintf(stderr, "llama-ref: out of memory\n"); exit(1); }
        ggml_backend_tensor_get(t, h, 0, (size_t)n * sizeof(ggml_fp16_t));
        for (int64_t i = 0; i < n; i++) d->buf[i] = ggml_fp16_to_fp32(h[i]);
        free(h);
    }
    char file[512], path[1024];
    snprintf(file, sizeof file, "%d-%03d-%s.f32", d->step, d->seq++, ggml_get_name(t));
    snprintf(path, sizeof path, "%s/%s", d->dir, file);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d->buf, sizeof(float), (size_t)n, f) != (size_t)n || fclose(f) != 0) {
        fprintf(stderr, "llama-ref: cannot write %s\n", path);
        exit(1);
    }
    fprintf(d->index, "{\"step\":%d,\"name\":\"%s\",\"ne\":[%lld,%lld,%lld,%lld],\"file\":\"%s\"}\n",
            d->step, ggml_get_name(t), (long long)t->ne[0], (long long)t->ne[1],
            (long long)t->ne[2], (long long)t->ne[3], file);
    return true;
}

// Greedy arg-max over the last position's logits (first index wins ties).
static llama_token argmax_last(struct llama_context *ctx, int n_vocab) {
    const float *logits = llama_get_logits_ith(ctx, -1);
    int best = 0;
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: llama-ref info|tokenize|generate|dump MODEL [N_PREDICT [N_THREADS [N_CTX]]]\n");
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
    setenv("GGML_CPU_TILED_MM", "0", 0);
    llama_log_set(quiet_log, NULL);
    llama_backend_init();

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.progress_callback = no_progress;  // silence the loading dots
    struct llama_model *model = llama_model_load_from_file(path, mp);
    if (!model) { fprintf(stderr, "llama-ref: cannot load %s\n", path); return 1; }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    if (strcmp(mode, "info") == 0) {
        char desc[256];
        llama_model_desc(model, desc, sizeof desc);
        printf("{\"desc\":");
        put_hex(desc, (int)strlen(desc));
        printf(",\"n_vocab\":%d,\"bos\":%d,\"eos\":%d,\"add_bos\":%s,\"n_params\":%llu}\n",
               n_vocab, llama_vocab_bos(vocab), llama_vocab_eos(vocab),
               llama_vocab_get_add_bos(vocab) ? "true" : "false",
               (unsigned long long)llama_model_n_params(model));
    } else if (strcmp(mode, "tokenize") == 0) {
        int len;
        char *s;
        while ((s = read_hex_line(&len)) != NULL) {
            static const bool combos[4][2] = {{1, 1}, {1, 0}, {0, 1}, {0, 0}};
            static const char *names[4] = {"bos_special", "bos_nospecial", "nobos_special", "nobos_nospecial"};
            putchar('{');
            for (int c = 0; c < 4; c++) {
                int n;
                llama_token *t = tokenize(vocab, s, len, combos[c][0], combos[c][1], &n);
                printf("%s\"%s\":", c ? "," : "", names[c]);
                put_ids(t, n);
                if (c == 0) {
                    printf(",\"pieces\":[");
                    for (int i = 0; i < n; i++) { if (i) putchar(','); put_piece(vocab, t[i]); }
                    putchar(']');
                }
                free(t);
            }
            printf("}\n");
            fflush(stdout);
            free(s);
        }
    } else if (strcmp(mode, "generate") == 0) {
        int n_predict = argc > 3 ? atoi(argv[3]) : 40;
        int n_threads = argc > 4 ? atoi(argv[4]) : 1;
        int n_ctx = argc > 5 ? atoi(argv[5]) : 512;
        int len;
        char *s;
        while ((s = read_hex_line(&len)) != NULL) {
            int n_prompt;
            llama_token *prompt = tokenize(vocab, s, len, true, true, &n_prompt);
            struct llama_context_params cp = llama_context_default_params();
            cp.n_ctx = (uint32_t)n_ctx;
            cp.n_batch = (uint32_t)n_ctx;
            cp.n_ubatch = (uint32_t)n_ctx;
            cp.n_threads = n_threads;
            cp.n_threads_batch = n_threads;
            cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
            cp.no_perf = true;
            struct llama_context *ctx = llama_init_from_model(model, cp);
            if (!ctx) { fprintf(stderr, "llama-ref: context init failed\n"); return 1; }

            printf("{\"prompt_ids\":");
            put_ids(prompt, n_prompt);
            printf(",\"steps\":[");
            struct llama_batch batch = llama_batch_get_one(prompt, n_prompt);
            llama_token cur;
            const char *stop = "n_predict";
            for (int step = 0; step < n_predict; step++) {
                if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "llama-ref: decode failed\n"); return 1; }
                const float *logits = llama_get_logits_ith(ctx, -1);
                int top[5];
                int nt = 0;
                for (int i = 0; i < n_vocab; i++) {
                    // insertion into a descending top-5; strict > keeps the first index on ties
                    int pos = nt;
                    while (pos > 0 && logits[i] > logits[top[pos - 1]]) pos--;
                    if (pos < 5) {
                        int last = nt < 5 ? nt : 4;
                        for (int j = last; j > pos; j--) top[j] = top[j - 1];
                        top[pos] = i;
                        if (nt < 5) nt++;
                    }
                }
                cur = top[0];
                printf("%s{\"id\":%d,\"logit\":%.6g,\"top5\":[", step ? "," : "", cur, (double)logits[cur]);
                for (int j = 0; j < nt; j++)
                    printf("%s[%d,%.6g]", j ? "," : "", top[j], (double)logits[top[j]]);
                printf("],\"piece\":");
                put_piece(vocab, cur);
                putchar('}');
                if (llama_vocab_is_eog(vocab, cur)) { stop = "eog"; break; }
                batch = llama_batch_get_one(&cur, 1);
            }
            printf("],\"stop\":\"%s\"}\n", stop);
            fflush(stdout);
            llama_free(ctx);
            free(prompt);
            free(s);
        }
    } else if (strcmp(mode, "dump") == 0) {
        if (argc < 5) { fprintf(stderr, "usage: llama-ref dump MODEL N_GEN OUTDIR [N_THREADS]\n"); return 2; }
        int n_gen = atoi(argv[3]);
        const char *dir = argv[4];
        int n_threads = argc > 5 ? atoi(argv[5]) : 1;
        const char *list = getenv("LLAMA_REF_DUMP");
        if (!list || !*list)
            list = "inp_scaled,attn_norm,Qcur,Kcur,Vcur,Qcur_normed,Kcur_normed,kq,kq_soft_max,kqv,"
                   "kqv_out,attn_post_norm,sa_out,ffn_norm,ffn_gate,ffn_up,ffn_geglu,ffn_swiglu,ffn_out,"
                   "ffn_post_norm,l_out,result_norm,result_output";
        struct dump_ctx d = { .dir = dir };
        size_t ln = strlen(list);
        char *names = malloc(ln + 3);
        names[0] = ',';
        memcpy(names + 1, list, ln);
        names[ln + 1] = ',';
        names[ln + 2] = 0;
        d.names = names;
        mkdir(dir, 0777);
        char ipath[1024];
        snprintf(ipath, sizeof ipath, "%s/index.jsonl", dir);
        d.index = fopen(ipath, "w");
        if (!d.index) { fprintf(stderr, "llama-ref: cannot write %s\n", ipath); return 1; }
        int len;
        char *s = read_hex_line(&len);
        if (!s) { fprintf(stderr, "llama-ref: no prompt on stdin\n"); return 2; }
        int n_prompt;
        llama_token *prompt = tokenize(vocab, s, len, true, true, &n_prompt);
        struct llama_context_params cp = llama_context_default_params();
        cp.n_ctx = 512;
        cp.n_batch = 512;
        cp.n_ubatch = 512;
        cp.n_threads = n_threads;
        cp.n_threads_batch = n_threads;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        cp.no_perf = true;
        cp.cb_eval = dump_cb;
        cp.cb_eval_user_data = &d;
        struct llama_context *ctx = llama_init_from_model(model, cp);
        if (!ctx) { fprintf(stderr, "llama-ref: context init failed\n"); return 1; }
        printf("{\"prompt_ids\":");
        put_ids(prompt, n_prompt);
        printf(",\"generated_ids\":[");
        struct llama_batch batch = llama_batch_get_one(prompt, n_prompt);
        llama_token cur;
        for (int step = 0; step <= n_gen; step++) {
            d.step = step;
            d.seq = 0;
            if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "llama-ref: decode failed\n"); return 1; }
            if (step == n_gen) break;
            cur = argmax_last(ctx, n_vocab);
            printf("%s%d", step ? "," : "", cur);
            batch = llama_batch_get_one(&cur, 1);
        }
        printf("]}\n");
        fclose(d.index);
        llama_free(ctx);
        free(prompt);
        free(s);
        free(names);
        free(d.buf);
    } else {
        fprintf(stderr, "llama-ref: unknown mode %s\n", mode);
        return 2;
    }
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
