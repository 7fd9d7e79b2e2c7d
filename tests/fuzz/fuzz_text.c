/* libFuzzer target: the text loader (src/data/text.c) on arbitrary bytes, at word and
 * char level. When a load succeeds, its invariants must hold; abort() otherwise. */
#include "data/text.h"
#include "lowbit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(lb_text *t, lb_text_level level, const char *text) {
    const lb_vocab *v = &t->vocab;
    if (t->level != level || v->n < (level == LB_TEXT_WORD ? 3 : 2) || !t->source) abort();
    if (level == LB_TEXT_WORD && v->n > 2 + 5) abort(); /* max_vocab 5 */
    if (lb_vocab_find(v, "<unk>") != LB_TEXT_UNK) abort();
    if (level == LB_TEXT_WORD && lb_vocab_find(v, "<eos>") != LB_TEXT_EOS) abort();
    for (int i = 0; i < v->n; i++)
        if (lb_vocab_find(v, v->tok[i]) != i) abort();
    /* lines: at least 20, split floor 90% / floor 5% / rest; one end-of-line token per line */
    int64_t lines = t->lines[0] + t->lines[1] + t->lines[2];
    if (lines < 20 || t->lines[0] != lines * 90 / 100 || t->lines[1] != lines * 5 / 100 || t->lines[2] < 1) abort();
    int32_t eol = level == LB_TEXT_WORD ? LB_TEXT_EOS : lb_vocab_find(v, "\n");
    if (eol < 1) abort();
    int64_t total = 0;
    for (int k = 0; k < 3; k++) {
        int64_t ends = 0;
        for (int64_t i = 0; i < t->len[k]; i++) {
            int32_t id = t->ids[k][i];
            if (id < 0 || id >= v->n) abort();
            ends += id == eol;
        }
        if (ends != t->lines[k] || t->len[k] < 1 || t->ids[k][t->len[k] - 1] != eol) abort();
        total += t->len[k];
    }
    /* char level: the training split has no <unk> by construction */
    if (level == LB_TEXT_CHAR)
        for (int64_t i = 0; i < t->len[0]; i++)
            if (t->ids[0][i] == LB_TEXT_UNK) abort();

    /* encoding the whole text as a prompt gives the three streams back-to-back (plus the
     * end of the last line when the text lacks a final newline) */
    int32_t *ids;
    int64_t n;
    if (lb_text_encode(v, level, text, &ids, &n) != LB_OK) abort();
    size_t tl = strlen(text);
    int64_t want = total - (tl && text[tl - 1] != '\n');
    if (n != want) abort();
    int64_t j = 0;
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < t->len[k] && j < n; i++, j++)
            if (ids[j] != t->ids[k][i]) abort();
    free(ids);

    /* decode: NUL-terminated, at most cap - 1 bytes (long words are cut), nothing for
     * ids out of range */
    char buf[16];
    for (int i = -1; i <= v->n; i++) {
        size_t w = lb_text_decode(v, level, i, buf, sizeof buf);
        if (w >= sizeof buf || buf[w] != 0 || strlen(buf) != w) abort();
        if ((i < 0 || i >= v->n) && w != 0) abort();
    }

    /* vocabulary JSON round trip */
    char *js = lb_vocab_to_json(v, level);
    if (!js) abort();
    lb_vocab v2;
    lb_text_level l2;
    if (lb_vocab_from_json(&v2, &l2, js, "fuzz.json") != LB_OK) abort();
    if (l2 != level || v2.n != v->n) abort();
    for (int i = 0; i < v->n; i++)
        if (strcmp(v2.tok[i], v->tok[i]) || lb_vocab_find(&v2, v->tok[i]) != i) abort();
    lb_vocab_free(&v2);
    free(js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a NUL-terminated copy for the prompt check (only used when the load succeeded, which
     * means the data holds no NUL) */
    char *text = malloc(size + 1);
    if (!text) return 0;
    if (size) memcpy(text, data, size);
    text[size] = 0;
    for (int level = 0; level < 2; level++) {
        lb_text *t = (lb_text *)1;
        lb_status s = lb_text_load_buffer(&t, (const char *)data, size, "fuzz.txt", (lb_text_level)level, 5);
        if (s != LB_OK) {
            /* a failure leaves nothing behind and says why, naming the source */
            if (t || !strstr(lb_last_error(), "fuzz.txt")) abort();
            continue;
        }
        check(t, (lb_text_level)level, text);
        lb_text_free(t);
    }
    /* the JSON parser on the same bytes */
    lb_vocab v;
    lb_text_level l;
    if (lb_vocab_from_json(&v, &l, text, "fuzz.json") == LB_OK) {
        for (int i = 0; i < v.n; i++)
            if (lb_vocab_find(&v, v.tok[i]) != i) abort();
        lb_vocab_free(&v);
    } else if (v.n || v.tok || !strstr(lb_last_error(), "fuzz.json")) {
        abort();
    }
    free(text);
    return 0;
}
