/* tokenizer_heap.h - the binary heap both merge loops use (SPM: best score
 * first; BPE: lowest rank first), stored in the tokenizer's per-call scratch
 * slot `slot`.  TOK_HEAP(name, T, before, slot) defines struct name with
 * name##_push / name##_pop for elements of type T, where before(a, b) is true
 * when a must come out first; one instance per element type, so the
 * comparison inlines.  Include after tokenizer_impl.h. */
#ifndef SMK_TOKENIZER_TOKENIZER_HEAP_H
#define SMK_TOKENIZER_TOKENIZER_HEAP_H

#include <errno.h>
#include <stddef.h>

#define TOK_HEAP(name, T, before, slot)                                              \
	struct name {                                                                \
		struct tok_scratch *s;                                               \
		T *h;                                                                \
		size_t n;                                                            \
	};                                                                           \
                                                                                     \
	static int name##_push(struct name *q, T b)                                  \
	{                                                                            \
		q->h = tok_scratch_get(q->s, slot, sizeof(*q->h) * (q->n + 1));      \
		if (!q->h)                                                           \
			return -ENOMEM;                                              \
		size_t i = q->n++;                                                   \
		while (i > 0) {                                                      \
			size_t parent = (i - 1) / 2;                                 \
			if (!before(&b, &q->h[parent]))                              \
				break;                                               \
			q->h[i] = q->h[parent];                                      \
			i = parent;                                                  \
		}                                                                    \
		q->h[i] = b;                                                         \
		return 0;                                                            \
	}                                                                            \
                                                                                     \
	static T name##_pop(struct name *q)                                          \
	{                                                                            \
		T top = q->h[0], last = q->h[--q->n];                                \
		size_t i = 0;                                                        \
		for (;;) {                                                           \
			size_t c = 2 * i + 1;                                        \
			if (c >= q->n)                                               \
				break;                                               \
			if (c + 1 < q->n && before(&q->h[c + 1], &q->h[c]))          \
				c++;                                                 \
			if (!before(&q->h[c], &last))                                \
				break;                                               \
			q->h[i] = q->h[c];                                           \
			i = c;                                                       \
		}                                                                    \
		if (q->n)                                                            \
			q->h[i] = last;                                              \
		return top;                                                          \
	}

#endif
