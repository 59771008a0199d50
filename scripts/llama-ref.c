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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include "llama.h"

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

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: llama-ref info|tokenize|generate MODEL [N_PREDICT [N_THREADS [N_CTX]]]\n");
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
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
    } else {
        fprintf(stderr, "llama-ref: unknown mode %s\n", mode);
        return 2;
    }
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
