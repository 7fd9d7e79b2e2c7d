/* Text data for language models (src/data/text.c): tokenizers, splits, vocabulary
 * ranking, JSON round trip, prompt encode/decode, bad input, and KJV when extracted. */
#include "data/text.h"
#include "lowbit.h"
#include "test_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static lb_text *load_str(const char *s, lb_text_level level, int max_vocab) {
    lb_text *t = NULL;
    lb_status st = lb_text_load_buffer(&t, s, strlen(s), "test.txt", level, max_vocab);
    if (st != LB_OK) fprintf(stderr, "load failed: %s\n", lb_last_error());
    return t;
}

static int ids_eq(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    if (na != nb) return 0;
    for (int64_t i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *a, int64_t n) {
    fprintf(stderr, "%s (%lld):", what, (long long)n);
    for (int64_t i = 0; i < n; i++) fprintf(stderr, " %d", a[i]);
    fputc('\n', stderr);
}

#define CHECK_IDS(got, ngot, ...) do { const int32_t _w[] = {__VA_ARGS__}; \
    int64_t _nw = (int64_t)(sizeof _w / sizeof _w[0]); int _ok = ids_eq(got, ngot, _w, _nw); \
    CHECK_MSG(_ok, "ids differ from %s", #__VA_ARGS__); if (!_ok) print_ids("got", got, ngot); } while (0)

/* 20 lines: 18 training, 1 validation, 1 test (no final newline). */
static const char *WORD_TEXT =
    "The cat sat.\n"
    "the CAT, the dog!\n"
    "DON'T stop-it 42; ab a 'tis\n"
    "...\n"
    "\n"
    "-\n-\n-\n-\n-\n-\n-\n-\n-\n-\n-\n-\n-\n"
    "The bird sat\n"
    "Zebra's cat";

static void test_word(void) {
    lb_text *t = load_str(WORD_TEXT, LB_TEXT_WORD, 100);
    CHECK(t != NULL);
    if (!t) return;
    CHECK(t->level == LB_TEXT_WORD);
    CHECK(!strcmp(t->source, "test.txt"));
    CHECK(t->lines[0] == 18 && t->lines[1] == 1 && t->lines[2] == 1);
    /* the:3, cat:2, then count 1 by byte order: 'tis 42 a ab dog don't it sat stop */
    const char *want[] = {"<unk>", "<eos>", "the", "cat", "'tis", "42", "a", "ab", "dog", "don't", "it", "sat", "stop"};
    CHECK(t->vocab.n == 13);
    for (int i = 0; i < 13 && i < t->vocab.n; i++)
        CHECK_MSG(!strcmp(t->vocab.tok[i], want[i]), "tok[%d] = %s, expected %s", i, t->vocab.tok[i], want[i]);
    CHECK_IDS(t->ids[0], t->len[0], 2, 3, 11, 1, 2, 3, 2, 8, 1, 9, 12, 10, 5, 7, 6, 4, 1,
              1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    CHECK_IDS(t->ids[1], t->len[1], 2, 0, 11, 1);   /* bird -> <unk> */
    CHECK_IDS(t->ids[2], t->len[2], 0, 3, 1);       /* zebra's -> <unk>; final line gets <eos> */
    CHECK(lb_vocab_find(&t->vocab, "the") == 2);
    CHECK(lb_vocab_find(&t->vocab, "<eos>") == 1);
    CHECK(lb_vocab_find(&t->vocab, "<unk>") == 0);
    CHECK(lb_vocab_find(&t->vocab, "bird") == -1);
    CHECK(lb_vocab_find(&t->vocab, "The") == -1);
    CHECK(lb_vocab_find(&t->vocab, "") == -1);
    CHECK(lb_vocab_find(NULL, "the") == -1);

    /* JSON round trip */
    char *js = lb_vocab_to_json(&t->vocab, LB_TEXT_WORD);
    CHECK(js != NULL);
    lb_vocab v;
    lb_text_level lv = LB_TEXT_CHAR;
    CHECK_OK(lb_vocab_from_json(&v, &lv, js, "ckpt.safetensors"));
    CHECK(lv == LB_TEXT_WORD);
    CHECK(v.n == t->vocab.n);
    for (int i = 0; i < v.n && i < t->vocab.n; i++) CHECK(!strcmp(v.tok[i], t->vocab.tok[i]));
    CHECK(lb_vocab_find(&v, "don't") == 9);
    free(js);

    /* prompts: "\n" gives <eos>, nothing is appended */
    int32_t *ids;
    int64_t n;
    CHECK_OK(lb_text_encode(&v, LB_TEXT_WORD, "The cat, THE dog\r\nzebra 42", &ids, &n));
    CHECK_IDS(ids, n, 2, 3, 2, 8, 1, 0, 5);
    char out[256], *p = out, *end = out + sizeof out;
    for (int64_t i = 0; i < n; i++) p += lb_text_decode(&v, LB_TEXT_WORD, ids[i], p, (size_t)(end - p));
    CHECK_MSG(!strcmp(out, " the cat the dog\n <unk> 42"), "decoded \"%s\"", out);
    free(ids);
    CHECK_OK(lb_text_encode(&v, LB_TEXT_WORD, "", &ids, &n));
    CHECK(n == 0 && ids != NULL);
    free(ids);
    CHECK_OK(lb_text_encode(&v, LB_TEXT_WORD, "...", &ids, &n));
    CHECK(n == 0);
    free(ids);
    CHECK_STATUS(lb_text_encode(&v, LB_TEXT_WORD, "caf\xC3", &ids, &n), LB_ERR_INVALID);
    CHECK(strstr(lb_last_error(), "prompt") && strstr(lb_last_error(), "byte offset 3"));
    CHECK(ids == NULL && n == 0);

    /* decode: truncation at cap, bad ids */
    char small[8];
    CHECK(lb_text_decode(&v, LB_TEXT_WORD, 9, small, 4) == 3 && !strcmp(small, " do"));
    CHECK(lb_text_decode(&v, LB_TEXT_WORD, 9, small, 1) == 0 && small[0] == 0);
    CHECK(lb_text_decode(&v, LB_TEXT_WORD, 9, small, 0) == 0);
    CHECK(lb_text_decode(&v, LB_TEXT_WORD, 1, small, sizeof small) == 1 && !strcmp(small, "\n"));
    CHECK(lb_text_decode(&v, LB_TEXT_WORD, 13, small, sizeof small) == 0 && small[0] == 0);
    CHECK(lb_text_decode(&v, LB_TEXT_WORD, -1, small, sizeof small) == 0);
    lb_vocab_free(&v);
    lb_vocab_free(&v); /* safe twice */
    lb_text_free(t);

    /* cap: the top max_vocab words, the rest <unk> */
    t = load_str(WORD_TEXT, LB_TEXT_WORD, 4);
    CHECK(t != NULL);
    if (!t) return;
    CHECK(t->vocab.n == 6);
    CHECK(t->vocab.n == 6 && !strcmp(t->vocab.tok[4], "'tis") && !strcmp(t->vocab.tok[5], "42"));
    CHECK_IDS(t->ids[0], t->len[0], 2, 3, 0, 1, 2, 3, 2, 0, 1, 0, 0, 0, 5, 0, 0, 4, 1,
              1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    CHECK_IDS(t->ids[1], t->len[1], 2, 0, 0, 1);
    lb_text_free(t);
    t = load_str(WORD_TEXT, LB_TEXT_WORD, 1);
    CHECK(t && t->vocab.n == 3 && !strcmp(t->vocab.tok[2], "the"));
    lb_text_free(t);
}

/* 20 lines; CRLF on line 1, non-ASCII symbols in training, unseen ones in validation. */
static const char *CHAR_TEXT =
    "ba\r\n"
    "b\xC3\xA9\n"                 /* U+00E9 */
    "\xF0\x9F\x98\x80\n"          /* U+1F600 */
    "ba\nba\nba\nba\nba\nba\nba\nba\nba\nba\nba\nba\nba\nba\nba\n"
    "ac\xE2\x82\xAC\n"            /* U+20AC unseen */
    "b";

static void test_char(void) {
    lb_text *t = load_str(CHAR_TEXT, LB_TEXT_CHAR, 1);
    CHECK(t != NULL);
    if (!t) return;
    CHECK(t->level == LB_TEXT_CHAR);
    CHECK(t->lines[0] == 18 && t->lines[1] == 1 && t->lines[2] == 1);
    const char *want[] = {"<unk>", "\n", "a", "b", "\xC3\xA9", "\xF0\x9F\x98\x80"};
    CHECK(t->vocab.n == 6);
    for (int i = 0; i < 6 && i < t->vocab.n; i++) CHECK_MSG(!strcmp(t->vocab.tok[i], want[i]), "tok[%d]", i);
    CHECK_IDS(t->ids[0], t->len[0], 3, 2, 1, 3, 4, 1, 5, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1,
              3, 2, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1);
    CHECK_IDS(t->ids[1], t->len[1], 2, 0, 0, 1);
    CHECK_IDS(t->ids[2], t->len[2], 3, 1);
    CHECK(lb_vocab_find(&t->vocab, "\n") == 1);
    CHECK(lb_vocab_find(&t->vocab, "\xC3\xA9") == 4);
    CHECK(lb_vocab_find(&t->vocab, "<eos>") == -1);

    char *js = lb_vocab_to_json(&t->vocab, LB_TEXT_CHAR);
    CHECK(js && strstr(js, "\"level\":\"char\""));
    lb_vocab v;
    lb_text_level lv = LB_TEXT_WORD;
    CHECK_OK(lb_vocab_from_json(&v, &lv, js, "ckpt"));
    CHECK(lv == LB_TEXT_CHAR && v.n == 6);
    for (int i = 0; i < v.n && i < 6; i++) CHECK(!strcmp(v.tok[i], want[i]));
    free(js);

    int32_t *ids;
    int64_t n;
    CHECK_OK(lb_text_encode(&v, LB_TEXT_CHAR, "ba\r\n\xC3\xA9\xE2\x82\xAC\r", &ids, &n));
    CHECK_IDS(ids, n, 3, 2, 1, 4, 0, 0); /* a lone "\r" is a symbol (unseen here) */
    char out[64], *p = out, *end = out + sizeof out;
    for (int64_t i = 0; i < n; i++) p += lb_text_decode(&v, LB_TEXT_CHAR, ids[i], p, (size_t)(end - p));
    CHECK(!strcmp(out, "ba\n\xC3\xA9\xEF\xBF\xBD\xEF\xBF\xBD"));
    free(ids);
    char small[8];
    CHECK(lb_text_decode(&v, LB_TEXT_CHAR, 5, small, sizeof small) == 4);
    CHECK(lb_text_decode(&v, LB_TEXT_CHAR, 5, small, 4) == 0 && small[0] == 0); /* never half a code point */
    CHECK(lb_text_decode(&v, LB_TEXT_CHAR, 4, small, 3) == 2);
    CHECK(lb_text_decode(&v, LB_TEXT_CHAR, 0, small, 3) == 0);
    CHECK(lb_text_decode(&v, LB_TEXT_CHAR, 0, small, 4) == 3);
    lb_vocab_free(&v);
    lb_text_free(t);

    /* char level needs no words: punctuation only is fine */
    char buf[64] = "";
    for (int i = 0; i < 20; i++) strcat(buf, "..\n");
    t = load_str(buf, LB_TEXT_CHAR, 1);
    CHECK(t && t->vocab.n == 3 && t->len[0] == 54 && t->len[1] == 3 && t->len[2] == 3);
    lb_text_free(t);
}

/* Split arithmetic: floor(L*90/100) / floor(L*5/100) / rest, for L = 20..260; a missing
 * final newline changes nothing. */
static void test_splits(void) {
    static char buf[4096];
    for (int L = 20; L <= 260; L += 1) {
        size_t k = 0;
        for (int i = 0; i < L; i++) k += (size_t)snprintf(buf + k, sizeof buf - k, "w%d\n", i % 7);
        for (int strip = 0; strip < 2; strip++) {
            lb_text *t = NULL;
            lb_status s = lb_text_load_buffer(&t, buf, k - (size_t)strip, "splits", LB_TEXT_WORD, 100);
            CHECK_MSG(s == LB_OK, "L=%d: %s", L, lb_last_error());
            if (!t) continue;
            int64_t tr = L * 90 / 100, va = L * 5 / 100, te = L - tr - va;
            CHECK_MSG(t->lines[0] == tr && t->lines[1] == va && t->lines[2] == te, "L=%d", L);
            CHECK_MSG(va >= 1 && te >= 1, "L=%d", L);
            for (int j = 0; j < 3; j++) CHECK(t->len[j] == 2 * t->lines[j]);
            CHECK(t->vocab.n == 2 + (L * 90 / 100 < 7 ? L * 90 / 100 : 7));
            lb_text_free(t);
        }
    }
    /* the 20-line minimum and the split sizes of the examples in text.h */
    CHECK(31102 * 90 / 100 == 27991 && 31102 * 5 / 100 == 1555 && 31102 - 27991 - 1555 == 1556);
}

static char tmpdir[512];

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

/* A file with `s` as its contents must fail with `want`, naming the file and `needle`. */
static void expect_fail(const char *name, const void *data, size_t n, lb_text_level level, int max_vocab,
                        lb_status want, const char *needle) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    write_file(path, data, n);
    lb_text *t = (lb_text *)1;
    lb_status s = lb_text_load(&t, path, level, max_vocab);
    CHECK_MSG(s == want, "%s: status %d, expected %d (%s)", name, (int)s, (int)want, lb_last_error());
    CHECK_MSG(t == NULL, "%s: out not cleared", name);
    CHECK_MSG(strstr(lb_last_error(), path) != NULL, "%s: message does not name the file: %s", name, lb_last_error());
    CHECK_MSG(!needle || strstr(lb_last_error(), needle), "%s: message lacks \"%s\": %s", name, needle, lb_last_error());
    /* the same bytes from a buffer name the buffer */
    s = lb_text_load_buffer(&t, data, n, "membuf", level, max_vocab);
    CHECK_MSG(s == want && t == NULL && strstr(lb_last_error(), "membuf"), "%s from a buffer: %s", name, lb_last_error());
}

static void test_bad_input(void) {
    if (lbt_mkdtemp(tmpdir, sizeof tmpdir, "test_text")) {
        CHECK(0);
        return;
    }
    char buf[2048];
    /* 20 good lines, then variants */
    char good[512] = "";
    for (int i = 0; i < 20; i++) strcat(good, "in the beginning\n");
    size_t gn = strlen(good);

    expect_fail("empty.txt", "", 0, LB_TEXT_WORD, 10, LB_ERR_FORMAT, "empty");
    for (int lv = 0; lv < 2; lv++) {
        /* NUL on line 3 at byte offset 2*17 + 4 */
        memcpy(buf, good, gn);
        buf[38] = 0;
        expect_fail("nul.bin", buf, gn, (lb_text_level)lv, 10, LB_ERR_FORMAT, "line 3, byte offset 38: NUL");
        memcpy(buf, good, gn);
        memcpy(buf + 17, "\xC0\xAF", 2); /* overlong '/' */
        expect_fail("overlong.txt", buf, gn, (lb_text_level)lv, 10, LB_ERR_FORMAT, "line 2, byte offset 17: invalid UTF-8 (overlong");
        memcpy(buf, good, gn);
        memcpy(buf + 20, "\xE0\x80\xAF", 3); /* overlong, 3 bytes */
        expect_fail("overlong3.txt", buf, gn, (lb_text_level)lv, 10, LB_ERR_FORMAT, "overlong");
        memcpy(buf, good, gn);
        memcpy(buf + 18, "\xE2\x82", 2); /* euro sign missing its last byte */
        expect_fail("truncated.txt", buf, gn, (lb_text_level)lv, 10, LB_ERR_FORMAT, "byte offset 18: invalid UTF-8 (truncated");
        memcpy(buf, good, gn);
        buf[gn - 1] = (char)0xC3; /* the file ends inside a sequence */
        expect_fail("truncated_eof.txt", buf, gn, (lb_text_level)lv, 10, LB_ERR_FORMAT, "truncated");
        memcpy(buf, good, gn);
        memcpy(buf + 40, "\xED\xA0\x80", 3); /* U+D800 */
        expect_fail("surrogate.txt", buf, gn, (lb_text_level)lv, 10, LB_ERR_FORMAT, "line 3, byte offset 40: invalid UTF-8 (surrogate");
        memcpy(buf, good, gn);
        buf[5] = (char)0x80;
        expect_fail("continuation.txt", buf, gn, (lb_text_level)lv, 10, LB_ERR_FORMAT, "line 1, byte offset 5: invalid UTF-8 (unexpected continuation");
        memcpy(buf, good, gn);
        memcpy(buf + 3, "\xF4\x90\x80\x80", 4); /* U+110000 */
        expect_fail("above.txt", buf, gn, (lb_text_level)lv, 10, LB_ERR_FORMAT, "above U+10FFFF");
        memcpy(buf, good, gn);
        buf[3] = (char)0xFF;
        expect_fail("ff.txt", buf, gn, (lb_text_level)lv, 10, LB_ERR_FORMAT, "cannot start");
        /* 19 lines */
        expect_fail("short.txt", good, gn - 17, (lb_text_level)lv, 10, LB_ERR_FORMAT, "19 lines");
        expect_fail("maxvocab.txt", good, gn, (lb_text_level)lv, 0, LB_ERR_INVALID, "max_vocab 0");
    }
    /* training split of punctuation only (words only in the test split) */
    char punct[512] = "";
    for (int i = 0; i < 19; i++) strcat(punct, "... ; --\n");
    strcat(punct, "words here\n");
    expect_fail("punct.txt", punct, strlen(punct), LB_TEXT_WORD, 10, LB_ERR_FORMAT, "no words");
    /* ... and non-ASCII letters are separators, not words */
    char accents[512] = "";
    for (int i = 0; i < 20; i++) strcat(accents, "\xC3\xA9\xC3\xA8\n");
    expect_fail("accents.txt", accents, strlen(accents), LB_TEXT_WORD, 10, LB_ERR_FORMAT, "no words");

    /* missing file */
    char path[700];
    snprintf(path, sizeof path, "%s/missing.txt", tmpdir);
    lb_text *t = NULL;
    CHECK_STATUS(lb_text_load(&t, path, LB_TEXT_WORD, 10), LB_ERR_IO);
    CHECK(t == NULL && strstr(lb_last_error(), path));
    /* kjv where it is not: names the path and says how to get it */
    setenv("LOWBIT_DATA", tmpdir, 1);
    CHECK_STATUS(lb_text_load(&t, "kjv", LB_TEXT_CHAR, 10), LB_ERR_IO);
    CHECK_MSG(strstr(lb_last_error(), "kjv.txt") && strstr(lb_last_error(), "scripts/install-deps.sh"), "%s", lb_last_error());
    unsetenv("LOWBIT_DATA");
    CHECK_STATUS(lb_text_load(&t, "", LB_TEXT_WORD, 10), LB_ERR_INVALID);
    CHECK_STATUS(lb_text_load(&t, path, (lb_text_level)7, 10), LB_ERR_INVALID);
    CHECK_STATUS(lb_text_load_buffer(&t, good, gn, "x", LB_TEXT_WORD, -5), LB_ERR_INVALID);
    /* a directory is not a text file */
    CHECK_STATUS(lb_text_load(&t, tmpdir, LB_TEXT_WORD, 10), LB_ERR_IO);

    /* a good file loads from disk too, and t->source is its path */
    snprintf(path, sizeof path, "%s/good.txt", tmpdir);
    write_file(path, good, gn);
    CHECK_OK(lb_text_load(&t, path, LB_TEXT_WORD, 10));
    CHECK(t && !strcmp(t->source, path) && t->vocab.n == 5 && t->len[0] == 18 * 4);
    lb_text_free(t);
    lb_text_free(NULL);

    /* clean up */
    const char *names[] = {"empty.txt", "nul.bin", "overlong.txt", "overlong3.txt", "truncated.txt",
                           "truncated_eof.txt", "surrogate.txt", "continuation.txt", "above.txt", "ff.txt",
                           "short.txt", "maxvocab.txt", "punct.txt", "accents.txt", "good.txt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

static void expect_bad_json(const char *json, const char *needle) {
    lb_vocab v;
    lb_text_level lv;
    lb_status s = lb_vocab_from_json(&v, &lv, json, "model.safetensors");
    CHECK_MSG(s == LB_ERR_FORMAT, "%s: status %d (%s)", json, (int)s, lb_last_error());
    CHECK_MSG(strstr(lb_last_error(), "model.safetensors") && strstr(lb_last_error(), needle),
              "%s: message \"%s\" lacks \"%s\"", json, lb_last_error(), needle);
    CHECK(v.n == 0 && v.tok == NULL);
    lb_vocab_free(&v);
}

static void test_bad_json(void) {
    expect_bad_json("", "invalid JSON");
    expect_bad_json("{\"level\":\"word\",\"tokens\":[\"<unk>\",\"<eos>\",\"a\"", "invalid JSON");
    expect_bad_json("[]", "object");
    expect_bad_json("{\"tokens\":[\"<unk>\",\"<eos>\",\"a\"]}", "level");
    expect_bad_json("{\"level\":\"byte\",\"tokens\":[\"<unk>\",\"<eos>\",\"a\"]}", "level");
    expect_bad_json("{\"level\":\"word\"}", "tokens");
    expect_bad_json("{\"level\":\"word\",\"tokens\":{}}", "tokens");
    expect_bad_json("{\"level\":\"word\",\"tokens\":[\"<unk>\",\"<eos>\"]}", "at least 3");
    expect_bad_json("{\"level\":\"char\",\"tokens\":[\"<unk>\"]}", "at least 2");
    expect_bad_json("{\"level\":\"word\",\"tokens\":[\"<eos>\",\"<unk>\",\"a\"]}", "tokens[0]");
    expect_bad_json("{\"level\":\"word\",\"tokens\":[\"<unk>\",\"the\",\"a\"]}", "tokens[1]");
    expect_bad_json("{\"level\":\"word\",\"tokens\":[\"<unk>\",\"<eos>\",\"a\",\"The\"]}", "tokens[3]");
    expect_bad_json("{\"level\":\"word\",\"tokens\":[\"<unk>\",\"<eos>\",\"a\",\"\"]}", "tokens[3]: empty");
    expect_bad_json("{\"level\":\"word\",\"tokens\":[\"<unk>\",\"<eos>\",\"a\",7]}", "tokens[3]: not a string");
    expect_bad_json("{\"level\":\"word\",\"tokens\":[\"<unk>\",\"<eos>\",\"a\",\"b\",\"a\"]}", "tokens[4] repeats tokens[2]");
    expect_bad_json("{\"level\":\"char\",\"tokens\":[\"<unk>\",\"b\",\"a\"]}", "ascending");
    expect_bad_json("{\"level\":\"char\",\"tokens\":[\"<unk>\",\"a\",\"a\"]}", "ascending");
    expect_bad_json("{\"level\":\"char\",\"tokens\":[\"<unk>\",\"ab\"]}", "single code point");
    expect_bad_json("{\"level\":\"char\",\"tokens\":[\"<unk>\",\"\"]}", "empty");
    expect_bad_json("{\"level\":\"char\",\"tokens\":[\"<unk>\",\"\\u0000\"]}", "empty");
    expect_bad_json("{\"level\":\"char\",\"tokens\":[\"<unk>\",\"\xED\xA0\x80\"]}", "surrogate");
    expect_bad_json("{\"level\":\"char\",\"tokens\":[\"<unk>\",\"\xC3\"]}", "truncated");
    /* good ones, including escapes */
    lb_vocab v;
    lb_text_level lv;
    CHECK_OK(lb_vocab_from_json(&v, &lv, "{\"level\":\"char\",\"tokens\":[\"<unk>\",\"\\n\",\"\\u00e9\",\"\\ud83d\\ude00\"]}", "x"));
    CHECK(lv == LB_TEXT_CHAR && v.n == 4 && !strcmp(v.tok[1], "\n") && !strcmp(v.tok[3], "\xF0\x9F\x98\x80"));
    lb_vocab_free(&v);
    CHECK_STATUS(lb_vocab_from_json(&v, &lv, NULL, "x"), LB_ERR_INVALID);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_kjv(void) {
    const char *dir = LB_SOURCE_DIR "/data";
    struct stat st;
    if (stat(LB_SOURCE_DIR "/data/kjv.txt", &st) != 0) {
        printf("kjv: skipped (%s/kjv.txt absent; run scripts/install-deps.sh)\n", dir);
        return;
    }
    setenv("LOWBIT_DATA", dir, 1);
    static const int64_t lines[3] = {27991, 1555, 1556};
    for (int lv = 0; lv < 2; lv++) {
        lb_text *t = NULL;
        double t0 = now_s();
        lb_status s = lb_text_load(&t, "kjv", (lb_text_level)lv, 10000);
        double dt = now_s() - t0;
        CHECK_MSG(s == LB_OK, "%s", lb_last_error());
        if (!t) continue;
        for (int k = 0; k < 3; k++) CHECK(t->lines[k] == lines[k]);
        if (lv == LB_TEXT_WORD) {
            CHECK(t->vocab.n == 10002);
            CHECK(!strcmp(t->vocab.tok[2], "the") && !strcmp(t->vocab.tok[3], "and") && !strcmp(t->vocab.tok[4], "of"));
            /* tokens per split (words + <eos>), as counted independently in Python */
            CHECK(t->len[0] == 746697 && t->len[1] == 35190 && t->len[2] == 38899);
        } else {
            CHECK(t->vocab.n == 64);
            CHECK(!strcmp(t->vocab.tok[1], "\n") && !strcmp(t->vocab.tok[2], " ") && !strcmp(t->vocab.tok[63], "z"));
            CHECK(t->len[0] == 3761637 && t->len[1] == 177092 && t->len[2] == 199121);
            CHECK(t->len[0] + t->len[1] + t->len[2] == 4137850); /* one symbol per byte, newlines included */
        }
        int64_t unk[3] = {0, 0, 0}, bad = 0;
        for (int k = 0; k < 3; k++)
            for (int64_t i = 0; i < t->len[k]; i++) {
                bad += t->ids[k][i] < 0 || t->ids[k][i] >= t->vocab.n;
                unk[k] += t->ids[k][i] == LB_TEXT_UNK;
            }
        CHECK(bad == 0);
        /* <unk> counts as counted independently in Python (none at char level) */
        if (lv == LB_TEXT_WORD) CHECK(unk[0] == 2014 && unk[1] == 870 && unk[2] == 889);
        else CHECK(unk[0] == 0 && unk[1] == 0 && unk[2] == 0);
        printf("kjv %s: vocab %d, lines %lld/%lld/%lld, tokens %lld/%lld/%lld (<unk> %lld/%lld/%lld), load %.3f s\n",
               lv ? "char" : "word", t->vocab.n, (long long)t->lines[0], (long long)t->lines[1],
               (long long)t->lines[2], (long long)t->len[0], (long long)t->len[1], (long long)t->len[2],
               (long long)unk[0], (long long)unk[1], (long long)unk[2], dt);
        char *js = lb_vocab_to_json(&t->vocab, (lb_text_level)lv);
        lb_vocab v;
        lb_text_level l2;
        CHECK(js != NULL);
        CHECK_OK(lb_vocab_from_json(&v, &l2, js, "kjv vocab"));
        CHECK(v.n == t->vocab.n && (int)l2 == lv);
        int same = 1;
        for (int i = 0; i < v.n && i < t->vocab.n; i++) same &= !strcmp(v.tok[i], t->vocab.tok[i]);
        CHECK(same);
        printf("kjv %s: vocabulary JSON %zu bytes\n", lv ? "char" : "word", js ? strlen(js) : 0);
        free(js);
        lb_vocab_free(&v);
        lb_text_free(t);
    }
    unsetenv("LOWBIT_DATA");
}

int main(void) {
    test_word();
    test_char();
    test_splits();
    test_bad_input();
    test_bad_json();
    test_kjv();
    return lbt_report("test_text");
}
