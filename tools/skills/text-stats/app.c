// text-stats: counts and word frequencies of a text. Pure computation, no host calls.
//
// Ownership (wit-bindgen C): an export owns its string arguments and must free them; what it
// returns is freed by the generated cabi_post_* function after the host has copied it, so results
// are malloc'd here and never freed here.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skill.h"

// Running out of the sandbox's memory cap must trap, not return garbage.
static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

// Decodes the code point at s[i]. Component-model strings arrive as valid UTF-8; a stray byte
// still advances by one so a scan always ends.
static uint32_t decode(const uint8_t *s, size_t len, size_t i, size_t *n) {
    uint8_t b = s[i];
    *n = 1;
    if (b < 0x80) return b;
    size_t need = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : 0;
    if (need == 0 || i + need >= len) return 0xFFFD;
    uint32_t cp = b & (0x3F >> need);
    for (size_t k = 1; k <= need; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return 0xFFFD;
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    *n = need + 1;
    return cp;
}

static int is_space(uint32_t c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

// Letters and digits: ASCII ones, and any other code point outside the blocks of controls,
// punctuation and symbols, so "café" or "Straße" stay one word without Unicode tables.
static int is_word(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    if (c < 0xC0) return c == 0xAA || c == 0xB5 || c == 0xBA;  // controls, Latin-1 punctuation
    if (c == 0xD7 || c == 0xF7 || c == 0xFFFD) return 0;       // × ÷, undecodable
    if (c >= 0x2000 && c <= 0x2BFF) return 0;  // punctuation, arrows, math, shapes, symbols
    if (c >= 0x3000 && c <= 0x303F) return 0;  // CJK punctuation
    if (c >= 0xFE30 && c <= 0xFE4F) return 0;  // CJK compatibility forms
    if ((c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20)) return 0;  // fullwidth
    if (c >= 0x1F000 && c <= 0x1FAFF) return 0;  // emoji and pictographs
    return !is_space(c);
}

static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }

// Finds the next word at or after *pos: a run of word characters in which an apostrophe or a
// hyphen between two of them ("don't", "well-known") and a '.' or ',' between two digits
// ("3.14", "1,000") are kept. Returns 0 when there is none.
static int next_word(const uint8_t *s, size_t len, size_t *pos, size_t *start, size_t *end,
                     uint32_t *chars) {
    size_t i = *pos, n;
    while (i < len && !is_word(decode(s, len, i, &n))) i += n;
    if (i >= len) return 0;
    *start = i;
    *chars = 0;
    uint32_t prev = 0;
    while (i < len) {
        uint32_t c = decode(s, len, i, &n);
        if (!is_word(c)) {
            size_t m;
            uint32_t next = i + n < len ? decode(s, len, i + n, &m) : 0;
            int joins = ((c == '\'' || c == 0x2019 || c == '-') && is_word(next)) ||
                        ((c == '.' || c == ',') && is_digit(prev) && is_digit(next));
            if (!joins) break;
        }
        (*chars)++;
        prev = c;
        i += n;
    }
    *end = *pos = i;
    return 1;
}

// ---------------------------------------------------------------- word counts
// Open addressing over the lowercased text: ASCII lowercasing keeps byte offsets, so an entry is
// an offset and a length into that copy.
typedef struct {
    uint32_t off, len, count, hash;
} entry_t;
typedef struct {
    const uint8_t *text;
    entry_t *slots;  // count == 0 marks a free slot
    size_t cap, used;
} table_t;

static uint32_t fnv1a(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    while (n--) h = (h ^ *p++) * 16777619u;
    return h;
}

static void table_put(table_t *t, uint32_t off, uint32_t len);

static void table_grow(table_t *t) {
    entry_t *old = t->slots;
    size_t old_cap = t->cap;
    t->cap = old_cap ? old_cap * 2 : 256;
    t->slots = xmalloc(t->cap * sizeof(entry_t));
    memset(t->slots, 0, t->cap * sizeof(entry_t));
    t->used = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].count) continue;
        size_t j = old[i].hash & (t->cap - 1);
        while (t->slots[j].count) j = (j + 1) & (t->cap - 1);
        t->slots[j] = old[i];
        t->used++;
    }
    free(old);
}

static void table_put(table_t *t, uint32_t off, uint32_t len) {
    if ((t->used + 1) * 2 > t->cap) table_grow(t);
    uint32_t h = fnv1a(t->text + off, len);
    size_t j = h & (t->cap - 1);
    for (;; j = (j + 1) & (t->cap - 1)) {
        entry_t *e = &t->slots[j];
        if (!e->count) {
            *e = (entry_t){off, len, 1, h};
            t->used++;
            return;
        }
        if (e->hash == h && e->len == len && memcmp(t->text + e->off, t->text + off, len) == 0) {
            e->count++;
            return;
        }
    }
}

// Counts every word of text into a table over a lowercased copy (*lower, freed by the caller).
static table_t count_words(const skill_string_t *text, uint8_t **lower) {
    uint8_t *low = xmalloc(text->len);
    for (size_t i = 0; i < text->len; i++) {
        uint8_t b = text->ptr[i];
        low[i] = b >= 'A' && b <= 'Z' ? b + 32 : b;
    }
    table_t t = {low, NULL, 0, 0};
    size_t pos = 0, start, end;
    uint32_t chars;
    while (next_word(low, text->len, &pos, &start, &end, &chars)) table_put(&t, start, end - start);
    *lower = low;
    return t;
}

// ---------------------------------------------------------------- exports
void exports_skill_analyze(skill_string_t *text, skill_stats_t *ret) {
    const uint8_t *s = text->ptr;
    size_t len = text->len, n;
    memset(ret, 0, sizeof *ret);

    // One pass over code points for characters, lines, paragraphs and sentences.
    int line_has_text = 0, in_paragraph = 0, sentence_open = 0;
    for (size_t i = 0; i < len; i += n) {
        uint32_t c = decode(s, len, i, &n);
        ret->characters++;
        if (c == '\n') {
            ret->lines++;
            if (!line_has_text) in_paragraph = 0;  // a blank line ends the paragraph
            line_has_text = 0;
            continue;
        }
        if (is_space(c)) continue;
        ret->characters_no_spaces++;
        line_has_text = 1;
        if (!in_paragraph) ret->paragraphs++, in_paragraph = 1;
        if (is_word(c)) {
            sentence_open = 1;
        } else if (sentence_open && (c == '.' || c == '!' || c == '?' || c == 0x2026 ||
                                     c == 0x3002 || c == 0xFF01 || c == 0xFF1F)) {
            // "3.14" and "example.com" do not end a sentence: the dot is followed by a word.
            size_t m;
            if (c == '.' && i + n < len && is_word(decode(s, len, i + n, &m))) continue;
            ret->sentences++;
            sentence_open = 0;
        }
    }
    if (len > 0 && s[len - 1] != '\n') ret->lines++;  // the last line has no newline
    if (sentence_open) ret->sentences++;

    size_t pos = 0, start, end;
    uint32_t chars;
    uint64_t word_chars = 0;
    while (next_word(s, len, &pos, &start, &end, &chars)) ret->words++, word_chars += chars;
    if (ret->words) ret->average_word_length = round((double)word_chars / ret->words * 100) / 100;
    ret->reading_time_seconds = (uint32_t)(((uint64_t)ret->words * 60 + 199) / 200);

    uint8_t *lower;
    table_t t = count_words(text, &lower);
    ret->unique_words = (uint32_t)t.used;
    free(t.slots);
    free(lower);
    skill_string_free(text);
}

// Most frequent first, then by word (bytes; a prefix before its extensions). qsort has no
// context argument, so the comparison reads the lowercased text through sort_text.
static const uint8_t *sort_text;
static int compare_entries(const void *a, const void *b) {
    const entry_t *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(sort_text + x->off, sort_text + y->off, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

void exports_skill_top_words(skill_string_t *text, uint32_t count, skill_list_word_count_t *ret) {
    uint8_t *lower;
    table_t t = count_words(text, &lower);
    skill_string_free(text);

    // Compact the used slots to the front, sort them, keep the first `count`.
    size_t k = 0;
    for (size_t i = 0; i < t.cap; i++)
        if (t.slots[i].count) t.slots[k++] = t.slots[i];
    sort_text = lower;
    if (k > 1) qsort(t.slots, k, sizeof(entry_t), compare_entries);
    size_t keep = k < count ? k : count;

    // An empty list must have a NULL pointer: the post-return frees a list's memory only when
    // its length is non-zero. Words are never empty, so each word's buffer is freed there too.
    ret->len = keep;
    ret->ptr = keep ? xmalloc(keep * sizeof(skill_word_count_t)) : NULL;
    for (size_t i = 0; i < keep; i++) {
        entry_t *e = &t.slots[i];
        uint8_t *w = xmalloc(e->len);
        memcpy(w, lower + e->off, e->len);
        ret->ptr[i] = (skill_word_count_t){{w, e->len}, e->count};
    }
    free(t.slots);
    free(lower);
}
