/* Text data for language models: line-based 90/5/5 splits of a UTF-8 text file,
 * word-level (PTB-like) or character-level tokens. The rules are in text.h.
 *
 * Loading is a few linear passes over the bytes: validate (UTF-8, no NUL) and count
 * lines; find the split boundaries; count training words in an open-addressing hash
 * (word level) or mark training code points in a bitmap (char level); rank with qsort;
 * then map every split to ids through the vocabulary's own hash index. */
#include "data/text.h"
#include "lb_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KJV_NAME "kjv"
#define KJV_FILE "kjv.txt"
#define KJV_HINT "run scripts/install-deps.sh to extract it (it writes data/kjv.txt in the repository), " \
                 "or set LOWBIT_DATA to the directory holding kjv.txt"

enum { MIN_LINES = 20 };

static const char UNK_TOK[] = "<unk>", EOS_TOK[] = "<eos>";
static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD, char-level text of <unk> */

/* ------------------------------------------------------------------ UTF-8 */

/* Decode the sequence at p[0..n) (n >= 1): its length, or 0 with *why set. */
static int utf8_decode(const uint8_t *p, size_t n, uint32_t *cp, const char **why) {
    uint8_t c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if (c < 0xC0) {
        *why = "unexpected continuation byte";
        return 0;
    } else if (c < 0xE0) {
        len = 2, v = c & 0x1Fu, min = 0x80;
    } else if (c < 0xF0) {
        len = 3, v = c & 0x0Fu, min = 0x800;
    } else if (c < 0xF8) {
        len = 4, v = c & 0x07u, min = 0x10000;
    } else {
        *why = "byte that cannot start a sequence";
        return 0;
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n || (p[i] & 0xC0) != 0x80) {
            *why = "truncated sequence";
            return 0;
        }
        v = (v << 6) | (p[i] & 0x3Fu);
    }
    if (v < min) {
        *why = "overlong encoding";
        return 0;
    }
    if (v >= 0xD800 && v <= 0xDFFF) {
        *why = "surrogate code point";
        return 0;
    }
    if (v > 0x10FFFF) {
        *why = "code point above U+10FFFF";
        return 0;
    }
    *cp = v;
    return len;
}

static int utf8_encode(uint32_t cp, char out[5]) {
    int n;
    if (cp < 0x80) {
        out[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    out[n] = 0;
    return n;
}

/* Validate b[0..len) (UTF-8, no NUL) and count its lines into *lines (when not NULL).
 * Failures return `err` with "<source>: line L, byte offset O: ..." (offsets 0-based), or
 * "<source>: byte offset O: ..." without with_lines (prompts). */
static lb_status scan_text(const uint8_t *b, size_t len, const char *source, lb_status err, int with_lines,
                           int64_t *lines) {
    int64_t line = 1;
    char where[96];
    size_t i = 0;
    while (i < len) {
        uint8_t c = b[i];
        if (c >= 0x80) {
            uint32_t cp;
            const char *why = "";
            int k = utf8_decode(b + i, len - i, &cp, &why);
            if (k) {
                i += (size_t)k;
                continue;
            }
            if (with_lines) snprintf(where, sizeof where, "line %lld, byte offset %zu", (long long)line, i);
            else snprintf(where, sizeof where, "byte offset %zu", i);
            return lb_fail(err, "%s: %s: invalid UTF-8 (%s, byte 0x%02x)", source, where, why, c);
        }
        if (c == 0)
            return lb_fail(err, "%s: line %lld, byte offset %zu: NUL byte: a binary file, not text", source,
                           (long long)line, i);
        line += c == '\n';
        i++;
    }
    if (lines) *lines = line - 1 + (len && b[len - 1] != '\n');
    return LB_OK;
}

/* ------------------------------------------------------------------ hashing */

static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* Id of the token p[0..n) (no NUL inside), or -1. */
static int32_t vocab_find_n(const lb_vocab *v, const char *p, size_t n) {
    if (!v || !v->slot_) return -1;
    uint32_t i = (uint32_t)hash_bytes(p, n) & v->mask_;
    for (;;) {
        int32_t id = v->slot_[i];
        if (id < 0) return -1;
        const char *t = v->tok[id];
        if (strncmp(t, p, n) == 0 && t[n] == 0) return id;
        i = (i + 1) & v->mask_;
    }
}

/* Build the index of v->tok[0..n). 0, 1 with *dup = (earlier id, later id) for a
 * duplicate token, -1 out of memory. */
static int vocab_index(lb_vocab *v, int dup[2]) {
    uint32_t cap = 8;
    while (cap < 2u * (uint32_t)v->n) cap <<= 1;
    free(v->slot_);
    v->slot_ = malloc((size_t)cap * sizeof *v->slot_);
    if (!v->slot_) return -1;
    memset(v->slot_, 0xff, (size_t)cap * sizeof *v->slot_);
    v->mask_ = cap - 1;
    for (int id = 0; id < v->n; id++) {
        size_t n = strlen(v->tok[id]);
        uint32_t i = (uint32_t)hash_bytes(v->tok[id], n) & v->mask_;
        while (v->slot_[i] >= 0) {
            if (!strcmp(v->tok[v->slot_[i]], v->tok[id])) {
                dup[0] = v->slot_[i];
                dup[1] = id;
                return 1;
            }
            i = (i + 1) & v->mask_;
        }
        v->slot_[i] = id;
    }
    return 0;
}

int32_t lb_vocab_find(const lb_vocab *v, const char *tok) {
    if (!v || !tok) return -1;
    return vocab_find_n(v, tok, strlen(tok));
}

void lb_vocab_free(lb_vocab *v) {
    if (!v) return;
    if (v->tok)
        for (int i = 0; i < v->n; i++) free(v->tok[i]);
    free(v->tok);
    free(v->slot_);
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------------ tokenizers */

/* [a-z0-9'] after lowercasing */
static int is_word_byte(uint8_t c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'';
}

static uint8_t lower_ascii(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c; }

/* Word ids of lw[a..b) (already lowercased): a word per [a-z0-9'] run, <eos> per "\n",
 * and one more <eos> when final_eos. ids needs room for (b - a) + 1. */
static int64_t word_ids(const lb_vocab *v, const uint8_t *lw, size_t a, size_t b, int final_eos, int32_t *ids) {
    int64_t k = 0;
    size_t i = a;
    while (i < b) {
        uint8_t c = lw[i];
        if (c == '\n') {
            ids[k++] = LB_TEXT_EOS;
            i++;
        } else if (!is_word_byte(c)) {
            i++;
        } else {
            size_t j = i + 1;
            while (j < b && is_word_byte(lw[j])) j++;
            int32_t id = vocab_find_n(v, (const char *)lw + i, j - i);
            ids[k++] = id < 0 ? LB_TEXT_UNK : id;
            i = j;
        }
    }
    if (final_eos) ids[k++] = LB_TEXT_EOS;
    return k;
}

/* Char ids of valid UTF-8 t[a..b): a symbol per code point, "\r\n" as "\n", and one more
 * "\n" when final_nl. ids needs room for (b - a) + 1. */
static int64_t char_ids(const lb_vocab *v, const uint8_t *t, size_t a, size_t b, int final_nl, int32_t *ids) {
    int32_t ascii[128];
    for (int c = 0; c < 128; c++) {
        char s = (char)c;
        int32_t id = c ? vocab_find_n(v, &s, 1) : -1;
        ascii[c] = id < 0 ? LB_TEXT_UNK : id;
    }
    int64_t k = 0;
    size_t i = a;
    while (i < b) {
        uint8_t c = t[i];
        if (c < 0x80) {
            if (!(c == '\r' && i + 1 < b && t[i + 1] == '\n')) ids[k++] = ascii[c];
            i++;
            continue;
        }
        size_t n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; /* valid UTF-8: the lead byte gives the length */
        int32_t id = vocab_find_n(v, (const char *)t + i, n);
        ids[k++] = id < 0 ? LB_TEXT_UNK : id;
        i += n;
    }
    if (final_nl) ids[k++] = ascii['\n'];
    return k;
}

/* ------------------------------------------------------------------ word vocabulary */

typedef struct word_ent {
    const char *p; /* into the lowercased text; NULL for an empty slot */
    size_t len;
    uint64_t h;
    int64_t count;
} word_ent;

typedef struct word_tab {
    word_ent *e;
    size_t cap, n;
} word_tab;

static int wt_grow(word_tab *t) {
    size_t cap = t->cap ? 2 * t->cap : 4096;
    word_ent *e = calloc(cap, sizeof *e);
    if (!e) return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->e[i].p) continue;
        size_t j = t->e[i].h & (cap - 1);
        while (e[j].p) j = (j + 1) & (cap - 1);
        e[j] = t->e[i];
    }
    free(t->e);
    t->e = e;
    t->cap = cap;
    return 0;
}

static int wt_add(word_tab *t, const char *p, size_t len) {
    if (2 * (t->n + 1) > t->cap && wt_grow(t) != 0) return -1;
    uint64_t h = hash_bytes(p, len);
    size_t j = h & (t->cap - 1);
    while (t->e[j].p) {
        word_ent *e = &t->e[j];
        if (e->h == h && e->len == len && !memcmp(e->p, p, len)) {
            e->count++;
            return 0;
        }
        j = (j + 1) & (t->cap - 1);
    }
    t->e[j] = (word_ent){p, len, h, 1};
    t->n++;
    return 0;
}

/* count descending, then byte order ascending (a prefix first) */
static int cmp_rank(const void *pa, const void *pb) {
    const word_ent *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    int c = memcmp(a->p, b->p, LB_MIN(a->len, b->len));
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Vocabulary of the words of lw[0..end) (lowercased training split). */
static lb_status word_vocab(lb_vocab *v, const uint8_t *lw, size_t end, int max_vocab, const char *source,
                            int64_t train_lines) {
    word_tab t = {0};
    word_ent *rank = NULL;
    lb_status s = LB_OK;
    size_t i = 0;
    while (i < end) {
        if (!is_word_byte(lw[i])) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < end && is_word_byte(lw[j])) j++;
        if (wt_add(&t, (const char *)lw + i, j - i) != 0) {
            s = lb_fail(LB_ERR_NOMEM, "%s: out of memory counting words", source);
            goto done;
        }
        i = j;
    }
    if (t.n == 0) {
        s = lb_fail(LB_ERR_FORMAT, "%s: the training split (lines 1-%lld) has no words ([a-z0-9'] runs): "
                    "the vocabulary would be empty", source, (long long)train_lines);
        goto done;
    }
    rank = malloc(t.n * sizeof *rank);
    if (!rank) {
        s = lb_fail(LB_ERR_NOMEM, "%s: out of memory ranking words", source);
        goto done;
    }
    size_t n = 0;
    for (size_t j = 0; j < t.cap; j++)
        if (t.e[j].p) rank[n++] = t.e[j];
    qsort(rank, n, sizeof *rank, cmp_rank);
    size_t keep = LB_MIN(n, (size_t)max_vocab);
    v->tok = calloc(keep + 2, sizeof *v->tok);
    if (!v->tok) {
        s = lb_fail(LB_ERR_NOMEM, "%s: out of memory for the vocabulary", source);
        goto done;
    }
    v->n = (int)(keep + 2);
    v->tok[0] = lb_strdup(UNK_TOK);
    v->tok[1] = lb_strdup(EOS_TOK);
    for (size_t r = 0; r < keep; r++) v->tok[2 + r] = strndup(rank[r].p, rank[r].len);
    for (int k = 0; k < v->n; k++)
        if (!v->tok[k]) {
            s = lb_fail(LB_ERR_NOMEM, "%s: out of memory for the vocabulary", source);
            goto done;
        }

done:
    free(t.e);
    free(rank);
    return s;
}

/* ------------------------------------------------------------------ char vocabulary */

/* Vocabulary of the code points of t[0..end) (training split) plus "\n". */
static lb_status char_vocab(lb_vocab *v, const uint8_t *t, size_t end, const char *source) {
    enum { NCP = 0x110000 };
    uint32_t *seen = calloc(NCP / 32, sizeof *seen);
    if (!seen) return lb_fail(LB_ERR_NOMEM, "%s: out of memory", source);
    seen['\n' / 32] |= 1u << ('\n' % 32);
    size_t i = 0;
    while (i < end) {
        uint32_t cp;
        const char *why;
        if (t[i] == '\r' && i + 1 < end && t[i + 1] == '\n') {
            i++;
            continue;
        }
        i += (size_t)utf8_decode(t + i, end - i, &cp, &why); /* validated: never 0 */
        seen[cp / 32] |= 1u << (cp % 32);
    }
    int n = 1;
    for (uint32_t w = 0; w < NCP / 32; w++) n += __builtin_popcount(seen[w]);
    lb_status s = LB_OK;
    v->tok = calloc((size_t)n, sizeof *v->tok);
    if (!v->tok) {
        s = lb_fail(LB_ERR_NOMEM, "%s: out of memory for the vocabulary", source);
        goto done;
    }
    v->n = n;
    v->tok[0] = lb_strdup(UNK_TOK);
    int k = 1;
    for (uint32_t w = 0; w < NCP / 32; w++)
        for (uint32_t bits = seen[w]; bits; bits &= bits - 1) {
            char u[5];
            utf8_encode(32 * w + (uint32_t)__builtin_ctz(bits), u);
            v->tok[k++] = lb_strdup(u);
        }
    for (k = 0; k < n; k++)
        if (!v->tok[k]) {
            s = lb_fail(LB_ERR_NOMEM, "%s: out of memory for the vocabulary", source);
            goto done;
        }
done:
    free(seen);
    return s;
}

/* ------------------------------------------------------------------ loading */

/* Offset just after `n` more lines from pos. */
static size_t skip_lines(const uint8_t *b, size_t len, size_t pos, int64_t n) {
    while (n-- > 0 && pos < len) {
        const uint8_t *q = memchr(b + pos, '\n', len - pos);
        pos = q ? (size_t)(q - b) + 1 : len;
    }
    return pos;
}

void lb_text_free(lb_text *t) {
    if (!t) return;
    lb_vocab_free(&t->vocab);
    for (int k = 0; k < 3; k++) free(t->ids[k]);
    free(t->source);
    free(t);
}

static const char *level_name(lb_text_level level) { return level == LB_TEXT_CHAR ? "char" : "word"; }

lb_status lb_text_load_buffer(lb_text **out, const char *buf, size_t len, const char *source,
                              lb_text_level level, int max_vocab) {
    if (!out) return lb_fail(LB_ERR_INVALID, "lb_text_load_buffer: NULL out");
    *out = NULL;
    if (!source) source = "buffer";
    if (level != LB_TEXT_WORD && level != LB_TEXT_CHAR)
        return lb_fail(LB_ERR_INVALID, "%s: text level %d: expected word (0) or char (1)", source, (int)level);
    if (max_vocab < 1) return lb_fail(LB_ERR_INVALID, "%s: max_vocab %d: must be at least 1", source, max_vocab);
    if (!buf && len) return lb_fail(LB_ERR_INVALID, "%s: NULL buffer", source);
    if (len == 0) return lb_fail(LB_ERR_FORMAT, "%s: empty file: no text", source);
    if (len > LB_TEXT_MAX_BYTES)
        return lb_fail(LB_ERR_FORMAT, "%s: %zu bytes: text files are limited to %zu bytes", source, len,
                       LB_TEXT_MAX_BYTES);
    const uint8_t *b = (const uint8_t *)buf;
    int64_t lines;
    lb_status s = scan_text(b, len, source, LB_ERR_FORMAT, 1, &lines);
    if (s != LB_OK) return s;
    if (lines < MIN_LINES)
        return lb_fail(LB_ERR_FORMAT, "%s: %lld line%s: at least %d are needed to split it 90/5/5 by line into "
                       "training, validation and test text", source, (long long)lines, lines == 1 ? "" : "s", MIN_LINES);

    uint8_t *lw = NULL;
    lb_text *t = calloc(1, sizeof *t);
    if (!t || !(t->source = lb_strdup(source))) {
        s = lb_fail(LB_ERR_NOMEM, "%s: out of memory", source);
        goto fail;
    }
    t->level = level;
    t->lines[LB_TEXT_TRAIN] = lines * 90 / 100;
    t->lines[LB_TEXT_VALID] = lines * 5 / 100;
    t->lines[LB_TEXT_TEST] = lines - t->lines[LB_TEXT_TRAIN] - t->lines[LB_TEXT_VALID];
    size_t off[4];
    off[0] = 0;
    for (int k = 0; k < 2; k++) off[k + 1] = skip_lines(b, len, off[k], t->lines[k]);
    off[3] = len;

    const uint8_t *text = b;
    if (level == LB_TEXT_WORD) {
        if (!(lw = malloc(len))) {
            s = lb_fail(LB_ERR_NOMEM, "%s: cannot allocate %zu bytes", source, len);
            goto fail;
        }
        for (size_t i = 0; i < len; i++) lw[i] = lower_ascii(b[i]);
        text = lw;
        s = word_vocab(&t->vocab, lw, off[1], max_vocab, source, t->lines[LB_TEXT_TRAIN]);
    } else {
        s = char_vocab(&t->vocab, b, off[1], source);
    }
    if (s != LB_OK) goto fail;
    int dup[2];
    int r = vocab_index(&t->vocab, dup);
    if (r != 0) { /* a duplicate cannot happen here: the tokens are distinct by construction */
        s = lb_fail(r < 0 ? LB_ERR_NOMEM : LB_ERR_FORMAT, "%s: cannot index the vocabulary", source);
        goto fail;
    }
    for (int k = 0; k < 3; k++) {
        size_t a = off[k], e = off[k + 1];
        int final = e == len && b[len - 1] != '\n';
        if (!(t->ids[k] = malloc((e - a + 1) * sizeof(int32_t)))) {
            s = lb_fail(LB_ERR_NOMEM, "%s: cannot allocate the token ids", source);
            goto fail;
        }
        t->len[k] = level == LB_TEXT_WORD ? word_ids(&t->vocab, text, a, e, final, t->ids[k])
                                          : char_ids(&t->vocab, text, a, e, final, t->ids[k]);
        int32_t *shrunk = realloc(t->ids[k], (size_t)LB_MAX(t->len[k], 1) * sizeof(int32_t));
        if (shrunk) t->ids[k] = shrunk;
    }
    free(lw);
    *out = t;
    return LB_OK;

fail:
    free(lw);
    lb_text_free(t);
    return s;
}

lb_status lb_text_load(lb_text **out, const char *spec, lb_text_level level, int max_vocab) {
    if (!out) return lb_fail(LB_ERR_INVALID, "lb_text_load: NULL out");
    *out = NULL;
    if (!spec || !spec[0]) return lb_fail(LB_ERR_INVALID, "text: empty data set name");
    if (level != LB_TEXT_WORD && level != LB_TEXT_CHAR)
        return lb_fail(LB_ERR_INVALID, "%s: text level %d: expected word (0) or char (1)", spec, (int)level);
    if (max_vocab < 1) return lb_fail(LB_ERR_INVALID, "%s: max_vocab %d: must be at least 1", spec, max_vocab);
    int kjv = !strcmp(spec, KJV_NAME);
    char *path = NULL;
    if (kjv) {
        const char *dir = getenv("LOWBIT_DATA");
        if (!dir || !dir[0]) dir = "data";
        size_t n = strlen(dir) + sizeof KJV_FILE + 1;
        if (!(path = malloc(n))) return lb_fail(LB_ERR_NOMEM, "%s: out of memory", spec);
        snprintf(path, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", KJV_FILE);
    } else if (!(path = lb_strdup(spec))) {
        return lb_fail(LB_ERR_NOMEM, "%s: out of memory", spec);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    lb_status s = lb_read_file(path, LB_TEXT_MAX_BYTES, &buf, &len);
    if (s == LB_OK) s = lb_text_load_buffer(out, (const char *)buf, len, path, level, max_vocab);
    if (s != LB_OK && kjv) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", lb_last_error());
        s = lb_fail(s, KJV_NAME ": %s%s", msg, s == LB_ERR_IO ? " (" KJV_HINT ")" : "");
    }
    free(buf);
    free(path);
    return s;
}

/* ------------------------------------------------------------------ JSON */

char *lb_vocab_to_json(const lb_vocab *v, lb_text_level level) {
    if (!v || (v->n > 0 && !v->tok)) {
        lb_fail(LB_ERR_INVALID, "lb_vocab_to_json: no vocabulary");
        return NULL;
    }
    char *out = NULL, *js = NULL;
    cJSON *o = cJSON_CreateObject(), *arr = NULL;
    if (!o || !cJSON_AddStringToObject(o, "level", level_name(level)) || !(arr = cJSON_AddArrayToObject(o, "tokens")))
        goto done;
    for (int i = 0; i < v->n; i++) {
        cJSON *s = cJSON_CreateString(v->tok[i]);
        if (!s || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            goto done;
        }
    }
    if ((js = cJSON_PrintUnformatted(o))) out = lb_strdup(js); /* free()-able whatever cJSON's hooks */
done:
    if (!out) lb_fail(LB_ERR_NOMEM, "vocabulary: out of memory writing JSON (%d tokens)", v->n);
    if (js) cJSON_free(js);
    cJSON_Delete(o);
    return out;
}

lb_status lb_vocab_from_json(lb_vocab *v, lb_text_level *level, const char *json, const char *source) {
    if (!source) source = "vocabulary";
    if (!v || !level) return lb_fail(LB_ERR_INVALID, "%s: lb_vocab_from_json: NULL argument", source);
    memset(v, 0, sizeof *v);
    if (!json) return lb_fail(LB_ERR_INVALID, "%s: no vocabulary JSON", source);
    lb_status s = LB_OK;
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        return lb_fail(LB_ERR_FORMAT, "%s: vocabulary: invalid JSON near byte %lld", source,
                       at && at >= json ? (long long)(at - json) : -1LL);
    }
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(root, "level");
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    lb_text_level lv;
    if (!cJSON_IsObject(root)) {
        s = lb_fail(LB_ERR_FORMAT, "%s: vocabulary: expected a JSON object", source);
        goto fail;
    }
    if (!cJSON_IsString(jl) || !jl->valuestring || (strcmp(jl->valuestring, "word") && strcmp(jl->valuestring, "char"))) {
        s = lb_fail(LB_ERR_FORMAT, "%s: vocabulary: \"level\" must be \"word\" or \"char\"", source);
        goto fail;
    }
    lv = !strcmp(jl->valuestring, "char") ? LB_TEXT_CHAR : LB_TEXT_WORD;
    if (!cJSON_IsArray(jt)) {
        s = lb_fail(LB_ERR_FORMAT, "%s: vocabulary: \"tokens\" must be an array of strings", source);
        goto fail;
    }
    int n = cJSON_GetArraySize(jt), min_n = lv == LB_TEXT_WORD ? 3 : 2;
    if (n < min_n) {
        s = lb_fail(LB_ERR_FORMAT, "%s: vocabulary: %d tokens: a %s vocabulary has at least %d", source, n,
                    level_name(lv), min_n);
        goto fail;
    }
    if (!(v->tok = calloc((size_t)n, sizeof *v->tok))) {
        s = lb_fail(LB_ERR_NOMEM, "%s: vocabulary: out of memory (%d tokens)", source, n);
        goto fail;
    }
    v->n = n;
    int i = 0;
    uint32_t prev_cp = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, jt) {
        const char *tk = cJSON_IsString(it) ? it->valuestring : NULL;
        const char *bad = NULL;
        if (!tk) {
            bad = "not a string";
        } else if (i == 0) {
            if (strcmp(tk, UNK_TOK)) bad = "token 0 must be \"<unk>\"";
        } else if (lv == LB_TEXT_WORD && i == 1) {
            if (strcmp(tk, EOS_TOK)) bad = "token 1 must be \"<eos>\" at word level";
        } else if (lv == LB_TEXT_WORD) {
            if (!tk[0]) bad = "empty word";
            for (const char *p = tk; *p && !bad; p++)
                if (!is_word_byte((uint8_t)*p)) bad = "a word is made of a-z, 0-9 and ' only";
        } else {
            uint32_t cp = 0;
            const char *why = "";
            size_t tl = strlen(tk);
            int k = tl ? utf8_decode((const uint8_t *)tk, tl, &cp, &why) : 0;
            if (!tl) bad = "empty symbol (or U+0000)";
            else if (!k) bad = why;
            else if ((size_t)k != tl) bad = "a symbol is a single code point";
            else if (i > 1 && cp <= prev_cp) bad = "symbols must be in ascending code point order";
            prev_cp = cp;
        }
        if (bad) {
            s = lb_fail(LB_ERR_FORMAT, "%s: vocabulary: tokens[%d]: %s", source, i, bad);
            goto fail;
        }
        if (!(v->tok[i] = lb_strdup(tk))) {
            s = lb_fail(LB_ERR_NOMEM, "%s: vocabulary: out of memory", source);
            goto fail;
        }
        i++;
    }
    int dup[2];
    int r = vocab_index(v, dup);
    if (r < 0) {
        s = lb_fail(LB_ERR_NOMEM, "%s: vocabulary: out of memory", source);
        goto fail;
    }
    if (r > 0) {
        s = lb_fail(LB_ERR_FORMAT, "%s: vocabulary: tokens[%d] repeats tokens[%d] (\"%.40s\")", source, dup[1],
                    dup[0], v->tok[dup[1]]);
        goto fail;
    }
    cJSON_Delete(root);
    *level = lv;
    return LB_OK;

fail:
    cJSON_Delete(root);
    lb_vocab_free(v);
    return s;
}

/* ------------------------------------------------------------------ prompts */

lb_status lb_text_encode(const lb_vocab *v, lb_text_level level, const char *s, int32_t **ids, int64_t *n) {
    if (!ids || !n) return lb_fail(LB_ERR_INVALID, "lb_text_encode: NULL output");
    *ids = NULL;
    *n = 0;
    if (!v || v->n < 1 || !v->slot_) return lb_fail(LB_ERR_INVALID, "prompt: no vocabulary");
    if (level != LB_TEXT_WORD && level != LB_TEXT_CHAR)
        return lb_fail(LB_ERR_INVALID, "prompt: text level %d: expected word (0) or char (1)", (int)level);
    if (!s) return lb_fail(LB_ERR_INVALID, "prompt: NULL string");
    size_t len = strlen(s);
    const uint8_t *b = (const uint8_t *)s;
    lb_status st = scan_text(b, len, "prompt", LB_ERR_INVALID, 0, NULL);
    if (st != LB_OK) return st;
    int32_t *out = malloc((len + 1) * sizeof *out);
    uint8_t *lw = level == LB_TEXT_WORD ? malloc(len ? len : 1) : NULL;
    if (!out || (level == LB_TEXT_WORD && !lw)) {
        free(out);
        free(lw);
        return lb_fail(LB_ERR_NOMEM, "prompt: out of memory (%zu bytes)", len);
    }
    int64_t k;
    if (level == LB_TEXT_WORD) {
        for (size_t i = 0; i < len; i++) lw[i] = lower_ascii(b[i]);
        k = word_ids(v, lw, 0, len, 0, out);
    } else {
        k = char_ids(v, b, 0, len, 0, out);
    }
    free(lw);
    *ids = out;
    *n = k;
    return LB_OK;
}

size_t lb_text_decode(const lb_vocab *v, lb_text_level level, int32_t id, char *buf, size_t cap) {
    if (!buf || cap == 0) return 0;
    buf[0] = 0;
    if (!v || !v->tok || id < 0 || id >= v->n) return 0;
    const char *t;
    size_t n = 0, room = cap - 1;
    if (level == LB_TEXT_CHAR) {
        t = id == LB_TEXT_UNK ? REPLACEMENT : v->tok[id];
    } else if (id == LB_TEXT_EOS) {
        t = "\n";
    } else {
        t = v->tok[id];
        if (room == 0) return 0;
        buf[n++] = ' ';
    }
    size_t tl = strlen(t), k = LB_MIN(tl, room - n);
    while (k > 0 && k < tl && ((uint8_t)t[k] & 0xC0) == 0x80) k--; /* never half a code point */
    memcpy(buf + n, t, k);
    n += k;
    buf[n] = 0;
    return n;
}
