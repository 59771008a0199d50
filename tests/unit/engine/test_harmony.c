/* Harmony output parser tests (daemon/engine/harmony.h): generated text, cut
 * into pieces as tokens would cut it, split into reasoning and content.
 * Each expectation is written from the format (openai/harmony
 * docs/format.md) and the rules in harmony.h, never from the parser's
 * output.  Every case is also fed in every other way that matters: whole,
 * byte by byte, and at each single cut point, and must give the same two
 * strings: a marker split across tokens or pushes is still a marker. */
#include <check.h>

#include "ck_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/harmony.h"

struct out {
	char reasoning[1024], content[1024], call[1024];
	size_t n_reasoning, n_content, n_call;
	char recipient[HARMONY_RECIPIENT_MAX + 1];   /* of the call's emits; all must agree */
	const struct harmony_parser *p;
	int n_emits;
};

static void emit(void *ctx, enum harmony_channel ch, const char *s, size_t len)
{
	struct out *o = ctx;
	ck_assert_msg(ch == HARMONY_REASONING || ch == HARMONY_CONTENT || ch == HARMONY_CALL,
		      "emitted channel %d", ch);
	ck_assert_uint_ge(len, 1);
	char *b = ch == HARMONY_REASONING ? o->reasoning : ch == HARMONY_CALL ? o->call : o->content;
	size_t *n = ch == HARMONY_REASONING ? &o->n_reasoning : ch == HARMONY_CALL ? &o->n_call : &o->n_content;
	if (ch == HARMONY_CALL) {
		char rec[HARMONY_RECIPIENT_MAX + 1];
		memcpy(rec, o->p->recipient, (size_t)o->p->n_recipient);
		rec[o->p->n_recipient] = 0;
		ck_assert_msg(!o->n_call || !strcmp(rec, o->recipient), "recipient '%s' then '%s'",
			      o->recipient, rec);
		strcpy(o->recipient, rec);
	}
	ck_assert_uint_lt(*n + len, sizeof(o->content));
	memcpy(b + *n, s, len);
	*n += len;
	b[*n] = 0;
	o->n_emits++;
}

/* pieces (NULL-terminated) pushed one by one, then finish. */
static void run_pieces(const char *const *pieces, struct out *o)
{
	memset(o, 0, sizeof(*o));
	struct harmony_parser p;
	harmony_init(&p);
	o->p = &p;
	for (int i = 0; pieces[i]; i++)
		harmony_push(&p, pieces[i], strlen(pieces[i]), emit, o);
	harmony_finish(&p, emit, o);
}

static const char *want_call, *want_recipient;   /* check_call's; "" for check */

static void expect_out(const struct out *o, const char *reasoning, const char *content, const char *how)
{
	ck_assert_msg(o->n_call == strlen(want_call) && !memcmp(o->call, want_call, o->n_call),
		      "%s: call '%s', want '%s'", how, o->call, want_call);
	ck_assert_msg(!o->n_call || !strcmp(o->recipient, want_recipient), "%s: recipient '%s', want '%s'",
		      how, o->recipient, want_recipient);
	ck_assert_msg(o->n_reasoning == strlen(reasoning) && !memcmp(o->reasoning, reasoning, o->n_reasoning),
		      "%s: reasoning '%s', want '%s'", how, o->reasoning, reasoning);
	ck_assert_msg(o->n_content == strlen(content) && !memcmp(o->content, content, o->n_content),
		      "%s: content '%s', want '%s'", how, o->content, content);
}

/* The pieces as given, the whole text at once, byte by byte, and cut once
 * at every offset: all must give (reasoning, content). */
static void check_all(const char *const *pieces, const char *reasoning, const char *content)
{
	struct out o;
	run_pieces(pieces, &o);
	expect_out(&o, reasoning, content, "pieces");

	char all[2048] = "";
	for (int i = 0; pieces[i]; i++)
		strcat(all, pieces[i]);
	size_t n = strlen(all);
	const char *whole[] = { all, NULL };
	run_pieces(whole, &o);
	expect_out(&o, reasoning, content, "whole");

	char bytes[2048][2];
	const char *one[2049];
	for (size_t i = 0; i < n; i++) {
		bytes[i][0] = all[i];
		bytes[i][1] = 0;
		one[i] = bytes[i];
	}
	one[n] = NULL;
	run_pieces(one, &o);
	expect_out(&o, reasoning, content, "byte by byte");

	for (size_t cut = 1; cut < n; cut++) {
		char a[2048], b[2048], how[32];
		memcpy(a, all, cut);
		a[cut] = 0;
		strcpy(b, all + cut);
		const char *two[] = { a, b, NULL };
		run_pieces(two, &o);
		snprintf(how, sizeof(how), "cut at %zu", cut);
		expect_out(&o, reasoning, content, how);
	}
}

static void check(const char *const *pieces, const char *reasoning, const char *content)
{
	want_call = want_recipient = "";
	check_all(pieces, reasoning, content);
}

/* The same, with a call body (HARMONY_CALL) to recipient. */
static void check_call(const char *const *pieces, const char *reasoning, const char *content,
		       const char *recipient, const char *call)
{
	want_call = call;
	want_recipient = recipient;
	check_all(pieces, reasoning, content);
}

START_TEST(analysis_then_final)
{
	/* As gpt-oss writes it after the prompt's <|start|>assistant, one
	 * token per piece; <|return|> ended the generation and is no text. */
	const char *p[] = { "<|channel|>", "analysis", "<|message|>", "User", " says", " hi", ".",
			    "<|end|>", "<|start|>", "assistant", "<|channel|>", "final", "<|message|>",
			    "Hello", "!", " How", " can", " I", " help", "?", NULL };
	check(p, "User says hi.", "Hello! How can I help?");
}
END_TEST

START_TEST(final_only)
{
	const char *p[] = { "<|channel|>", "final", "<|message|>", "42", NULL };
	check(p, "", "42");
}
END_TEST

START_TEST(analysis_only_then_length)
{
	/* max_tokens ran out while reasoning: no content at all. */
	const char *p[] = { "<|channel|>", "analysis", "<|message|>", "Think", "ing", NULL };
	check(p, "Thinking", "");
}
END_TEST

START_TEST(markers_split_across_tokens)
{
	const char *p[] = { "<|chan", "nel|>ana", "lys", "is<|mes", "sage|>a<", "|end|", "><|st", "art|>assi",
			    "stant<|", "channel|>fi", "nal<", "|message|>b", NULL };
	check(p, "a", "b");
}
END_TEST

START_TEST(unknown_channel_is_content)
{
	const char *p[] = { "<|channel|>", "scratchpad", "<|message|>", "x", "<|end|>", NULL };
	check(p, "", "x");
	/* a name longer than any channel (and than the parser's buffer) */
	const char *q[] = { "<|channel|>analysisanalysisanalysis<|message|>y", NULL };
	check(q, "", "y");
	/* a prefix of a channel name is not that channel */
	const char *r[] = { "<|channel|>analys<|message|>z", NULL };
	check(r, "", "z");
}
END_TEST

START_TEST(no_channel_is_content)
{
	const char *p[] = { "<|message|>", "plain", NULL };
	check(p, "", "plain");
}
END_TEST

START_TEST(commentary_preamble_is_content)
{
	/* harmony: a preamble before tool calls, on commentary, no recipient */
	const char *p[] = { "<|channel|>commentary<|message|>Let me check.<|end|>", NULL };
	check(p, "", "Let me check.");
}
END_TEST

START_TEST(tool_calls_are_calls)
{
	/* harmony docs/format.md: recipient in the channel header, with a
	 * constraint; the generation ends on <|call|> (an EOG token, no text). */
	const char *p[] = { "<|channel|>analysis<|message|>Need weather.<|end|>",
			    "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json",
			    "<|message|>", "{\"location\":\"Tokyo\"}", NULL };
	check_call(p, "Need weather.", "", "functions.get_weather", "{\"location\":\"Tokyo\"}");
	/* the recipient in the role header (the template's own rendering) */
	const char *q[] = { " to=functions.f<|channel|>commentary json<|message|>{}", NULL };
	check_call(q, "", "", "functions.f", "{}");
	/* should <|call|> appear as text it ends the call; what follows is read */
	const char *r[] = { "<|channel|>commentary to=functions.f<|message|>{}<|call|>",
			    "<|start|>assistant<|channel|>final<|message|>done", NULL };
	check_call(r, "", "done", "functions.f", "{}");
	/* the recipient ends at a marker without a space: no constraint */
	const char *s[] = { "<|channel|>commentary to=functions.g-1<|message|>{\"a\": 1}", NULL };
	check_call(s, "", "", "functions.g-1", "{\"a\": 1}");
	/* a recipient longer than the parser keeps is no call: dropped */
	const char *t[] = { "<|channel|>commentary to=functions.", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa<|message|>{}", NULL };
	check(t, "", "");
}
END_TEST

START_TEST(truncated_mid_header)
{
	const char *p[] = { "<|channel|>analysis<|message|>r<|end|><|start|>assistant<|channel|>fin", NULL };
	check(p, "r", "");
	const char *q[] = { "<|channel|>analysis<|message|>r<|end|><|sta", NULL };
	check(q, "r", "");
	const char *e[] = { "<|chan", NULL };
	check(e, "", "");
}
END_TEST

START_TEST(truncated_mid_marker_in_a_body)
{
	/* "<|en" never became <|end|>: it was text after all */
	const char *p[] = { "<|channel|>final<|message|>a <|en", NULL };
	check(p, "", "a <|en");
	const char *q[] = { "<|channel|>analysis<|message|>b<", NULL };
	check(q, "b<", "");
}
END_TEST

START_TEST(angle_brackets_in_text)
{
	const char *p[] = { "<|channel|>final<|message|>", "a<b", " <| c", " <<|x|> <", "<|end|>", NULL };
	check(p, "", "a<b <| c <<|x|> <");
	/* a marker right after a '<' that was text */
	const char *q[] = { "<|channel|>analysis<|message|>1<<|end|><|start|>assistant<|channel|>final<|message|>2",
			    NULL };
	check(q, "1<", "2");
}
END_TEST

START_TEST(utf8_passes_whole)
{
	const char *p[] = { "<|channel|>final<|message|>", "caf\xc3\xa9", "<\xc3\xa9", " \xe2\x82\xac", NULL };
	check(p, "", "caf\xc3\xa9<\xc3\xa9 \xe2\x82\xac");
}
END_TEST

START_TEST(stray_commentary_before_analysis)
{
	/* llama.cpp's stray_commentary rule: the last channel counts */
	const char *p[] = { "<|channel|>commentary<|channel|>analysis<|message|>r<|end|>", NULL };
	check(p, "r", "");
}
END_TEST

START_TEST(markers_inside_a_body)
{
	/* <|message|> / <|constrain|> in a body are dropped; <|channel|> or
	 * <|start|> open a header (the model left out <|end|>) */
	const char *p[] = { "<|channel|>final<|message|>a<|message|>b<|constrain|>c", NULL };
	check(p, "", "abc");
	const char *q[] = { "<|channel|>analysis<|message|>r<|channel|>final<|message|>f", NULL };
	check(q, "r", "f");
	const char *r[] = { "<|channel|>analysis<|message|>r<|start|>assistant<|channel|>final<|message|>f", NULL };
	check(r, "r", "f");
}
END_TEST

START_TEST(text_outside_messages_is_dropped)
{
	const char *p[] = { "junk<|channel|>final<|message|>ok<|end|>more junk", NULL };
	check(p, "", "ok");
}
END_TEST

START_TEST(finish_resets)
{
	struct out o;
	memset(&o, 0, sizeof(o));
	struct harmony_parser p;
	harmony_init(&p);
	o.p = &p;
	want_call = want_recipient = "";
	const char *s = "<|channel|>final<|message|>x";
	harmony_push(&p, s, strlen(s), emit, &o);
	harmony_finish(&p, emit, &o);
	/* a new generation starts in a header again */
	harmony_push(&p, "y", 1, emit, &o);
	harmony_finish(&p, emit, &o);
	expect_out(&o, "", "x", "after finish");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("harmony");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, analysis_then_final);
	tcase_add_test(tc, final_only);
	tcase_add_test(tc, analysis_only_then_length);
	tcase_add_test(tc, markers_split_across_tokens);
	tcase_add_test(tc, unknown_channel_is_content);
	tcase_add_test(tc, no_channel_is_content);
	tcase_add_test(tc, commentary_preamble_is_content);
	tcase_add_test(tc, tool_calls_are_calls);
	tcase_add_test(tc, truncated_mid_header);
	tcase_add_test(tc, truncated_mid_marker_in_a_body);
	tcase_add_test(tc, angle_brackets_in_text);
	tcase_add_test(tc, utf8_passes_whole);
	tcase_add_test(tc, stray_commentary_before_analysis);
	tcase_add_test(tc, markers_inside_a_body);
	tcase_add_test(tc, text_outside_messages_is_dropped);
	tcase_add_test(tc, finish_resets);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
