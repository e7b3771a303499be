/* The compiled scorer's hot loop (runtime.kernel): clean a Latin-1 review as core.text.clean_words
 * does, split it into whitespace tokens, look the tokens and their n-grams up, weigh the distinct
 * n-grams as TfidfVectorizer does and return the classifier's decision, per review.
 *
 * Only what it reproduces exactly is done here: Latin-1 reviews (every character below U+0100:
 * ASCII and 99 % of IMDB's others), the cleaning switches remove_html,
 * remove_urls, expand_negations, lowercase and separate_punctuation, whitespace tokens. Every
 * other review (any character from U+0100 up) is reported as not handled and takes the Python path.
 * The Python wrapper checks the model's shape and options before using this module at all.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

/* ---------------------------------------------------------------- cleaning (Latin-1) */

#ifndef AHEAD
#define AHEAD 8 /* slots asked for ahead of the probe: about the misses a core keeps in flight */
#endif
#define HTML_MAX 200 /* _HTML_TAG = <[^>]{1,200}> */

/* A Latin-1 character's classes, filled at import from the functions str and re use themselves
 * (init_latin1): str.isspace() (str.split(), re's \s), re's \w (str.isalnum() or '_') and
 * str.lower(), which maps every Latin-1 character to one Latin-1 character. */
static unsigned char SPACE[256], WORD[256], LOWER[256];

static int is_space(unsigned char c) { return SPACE[c]; }
static int is_word(unsigned char c) { return WORD[c]; }
static unsigned char lower(unsigned char c) { return LOWER[c]; }

/* Whitespace in cleaned text, which is UTF-8 with only ASCII whitespace left: bytes from 0x80
 * belong to a letter's encoding (0x85 and 0xA0 among them) and never separate tokens. */
static int utf8_space(unsigned char c) { return c < 0x80 && SPACE[c]; }

static int init_latin1(void) {
    PyObject *all = PyUnicode_New(256, 255);
    if (all == NULL)
        return -1;
    for (int c = 0; c < 256; c++)
        PyUnicode_WRITE(PyUnicode_1BYTE_KIND, PyUnicode_DATA(all), c, (Py_UCS4)c);
    PyObject *lowered = PyObject_CallMethod(all, "lower", NULL);
    Py_DECREF(all);
    if (lowered == NULL)
        return -1;
    int ok = PyUnicode_GET_LENGTH(lowered) == 256 && PyUnicode_KIND(lowered) == PyUnicode_1BYTE_KIND;
    for (int c = 0; ok && c < 256; c++) {
        LOWER[c] = (unsigned char)PyUnicode_READ_CHAR(lowered, c);
        SPACE[c] = (unsigned char)Py_UNICODE_ISSPACE((Py_UCS4)c);
        WORD[c] = (unsigned char)(Py_UNICODE_ISALNUM((Py_UCS4)c) || c == '_');
    }
    Py_DECREF(lowered);
    if (!ok)
        PyErr_SetString(PyExc_ImportError, "str.lower() maps Latin-1 outside Latin-1 here");
    return ok ? 0 : -1;
}

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t need) {
    if (need <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *data = realloc(b->data, (size_t)cap);
    if (data == NULL)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* _HTML_TAG.sub(" ", text): a '<', then 1..200 characters none of them '>', then '>'. */
static Py_ssize_t strip_html(const char *in, Py_ssize_t n, char *out) {
    Py_ssize_t o = 0, i = 0;
    while (i < n) {
        if (in[i] == '<') {
            Py_ssize_t limit = i + 1 + HTML_MAX < n ? i + 1 + HTML_MAX : n - 1, j;
            const char *close = NULL;
            if (i + 1 < n) {
                close = memchr(in + i + 1, '>', (size_t)(limit - i));
            }
            j = close ? (Py_ssize_t)(close - in) : -1;
            if (j > i + 1) {
                out[o++] = ' ';
                i = j + 1;
                continue;
            }
        }
        out[o++] = in[i++];
    }
    return o;
}

static int prefix_ci(const char *s, Py_ssize_t left, const char *p) {
    Py_ssize_t k = (Py_ssize_t)strlen(p);
    if (left < k)
        return 0;
    for (Py_ssize_t i = 0; i < k; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)p[i])
            return 0;
    return 1;
}

/* _URL.sub(" ", text): (?:https?://|www\.)\S+, case-insensitive. */
static Py_ssize_t strip_urls(const char *in, Py_ssize_t n, char *out) {
    Py_ssize_t o = 0, i = 0;
    while (i < n) {
        unsigned char c = lower((unsigned char)in[i]);
        if (c == 'h' || c == 'w') {
            Py_ssize_t p = 0;
            if (prefix_ci(in + i, n - i, "https://") && i + 8 < n && !is_space((unsigned char)in[i + 8]))
                p = 8;
            else if (prefix_ci(in + i, n - i, "http://") && i + 7 < n && !is_space((unsigned char)in[i + 7]))
                p = 7;
            else if (prefix_ci(in + i, n - i, "www.") && i + 4 < n && !is_space((unsigned char)in[i + 4]))
                p = 4;
            if (p) {
                Py_ssize_t j = i + p;
                while (j < n && !is_space((unsigned char)in[j]))
                    j++;
                out[o++] = ' ';
                i = j;
                continue;
            }
        }
        out[o++] = in[i++];
    }
    return o;
}

/* text._expand_negations: [nN]'[tT]\b → " not"; "can't" → "can not", "won't" → "will not". */
static Py_ssize_t expand_negations(const char *in, Py_ssize_t n, char *out) {
    Py_ssize_t o = 0, done = 0, i = 0;
    while (i + 2 < n) {
        if ((in[i] == 'n' || in[i] == 'N') && in[i + 1] == '\'' && (in[i + 2] == 't' || in[i + 2] == 'T') &&
            (i + 3 == n || !is_word((unsigned char)in[i + 3]))) {
            const char *stem = NULL;
            if (i >= 2 && (i == 2 || !is_word((unsigned char)in[i - 3]))) {
                unsigned char a = lower((unsigned char)in[i - 2]), b = lower((unsigned char)in[i - 1]);
                if (a == 'c' && b == 'a')
                    stem = "can";
                else if (a == 'w' && b == 'o')
                    stem = "will";
            }
            Py_ssize_t keep = stem ? i - 2 : i;
            if (keep > done) {
                memcpy(out + o, in + done, (size_t)(keep - done));
                o += keep - done;
            }
            if (stem) {
                size_t k = strlen(stem);
                memcpy(out + o, stem, k);
                o += (Py_ssize_t)k;
            }
            memcpy(out + o, " not", 4);
            o += 4;
            i += 3;
            done = i;
            continue;
        }
        i++;
    }
    memcpy(out + o, in + done, (size_t)(n - done));
    return o + n - done;
}

/* Whether _URL can match: its prefixes hold "://" or "www." (any case). Most reviews have
 * neither, and then the pass that copies the text is skipped, as the ones for tags and
 * negations are without a '<' or a '\''. */
static int may_have_url(const char *s, Py_ssize_t n) {
    if (memmem(s, (size_t)n, "://", 3) != NULL)
        return 1;
    for (const char *p = memchr(s, '.', (size_t)n); p != NULL;
         p = memchr(p + 1, '.', (size_t)(n - (p + 1 - s))))
        if (p - s >= 3 && lower((unsigned char)p[-1]) == 'w' && lower((unsigned char)p[-2]) == 'w' &&
            lower((unsigned char)p[-3]) == 'w')
            return 1;
    return 0;
}

static int is_mark(unsigned char c) { /* text.SEPARATED_MARKS */
    return c == '.' || c == ',' || c == '!' || c == '?' || c == ';' || c == ':' || c == '"' || c == '(' ||
           c == ')';
}

typedef struct {
    int remove_html, remove_urls, expand_negations, lowercase, separate_punctuation;
} Cleaning;

/* The cleaned text of a Latin-1 review into `b`, as UTF-8 (every token then separated by ASCII
 * whitespace). */
static int clean_latin1(const Cleaning *opt, const char *text, Py_ssize_t n, Buf *b, Buf *tmp) {
    /* Each step reads one buffer and writes the other; negations grow a text by at most 7/5,
     * separated marks by 3, UTF-8 a character by 2 (none of them both). */
    if (buf_reserve(b, 4 * n + 16) < 0 || buf_reserve(tmp, 4 * n + 16) < 0)
        return -1;
    const char *cur = text;
    Buf *dst = b, *spare = tmp;
    Py_ssize_t len = n;
#define STEP(call)                                                                                     \
    do {                                                                                               \
        len = call;                                                                                    \
        cur = dst->data;                                                                               \
        Buf *t_ = dst;                                                                                 \
        dst = spare;                                                                                   \
        spare = t_;                                                                                    \
    } while (0)
    if (opt->remove_html && memchr(cur, '<', (size_t)len) != NULL)
        STEP(strip_html(cur, len, dst->data));
    if (opt->remove_urls && may_have_url(cur, len))
        STEP(strip_urls(cur, len, dst->data));
    if (opt->expand_negations && memchr(cur, '\'', (size_t)len) != NULL)
        STEP(expand_negations(cur, len, dst->data));
    /* lowercase, separate marks and encode as UTF-8 (Latin-1 whitespace as ' ') in one pass */
    {
        Py_ssize_t o = 0;
        char *out = dst->data;
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)cur[i];
            if (opt->lowercase)
                c = lower(c);
            if (opt->separate_punctuation && is_mark(c)) {
                out[o++] = ' ';
                out[o++] = (char)c;
                out[o++] = ' ';
            } else if (c >= 0x80) {
                if (is_space(c)) {
                    out[o++] = ' ';
                } else {
                    out[o++] = (char)(0xC0 | (c >> 6));
                    out[o++] = (char)(0x80 | (c & 0x3F));
                }
            } else {
                out[o++] = (char)c;
            }
        }
        len = o;
        cur = dst->data;
    }
#undef STEP
    if (cur != b->data) { /* the result belongs in b */
        memcpy(b->data, cur, (size_t)len);
    }
    b->len = len;
    return 0;
}

/* ---------------------------------------------------------------- hash tables */

static uint64_t hash_bytes(const char *s, Py_ssize_t n) { /* FNV-1a */
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static size_t table_size(Py_ssize_t items) {
    size_t size = 16;
    while (size * 3 < (size_t)items * 4) /* load <= 0.75: linear probing stays short */
        size *= 2;
    return size;
}

/* ---------------------------------------------------------------- the kernel object */

/* A lookup table: tens of MB probed at random, one TLB miss per probe in 4 KiB pages. Aligned
 * to 2 MiB and marked for transparent huge pages where the kernel offers them ("madvise" mode,
 * the usual default): a page walk per probe fewer. Zeroed; freed with free(). */
static void *table_alloc(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge)
        return calloc(1, bytes);
    size_t rounded = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, rounded);
    if (p == NULL)
        return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE); /* advice: without it, ordinary pages */
#endif
    memset(p, 0, rounded);
    return p;
}

typedef struct {
    /* the column's idf (1 without), NB ratio (1 without) and coefficient: each in the slot that
     * finds the column, so weighing a review's columns reads nothing the probe did not */
    double idf, ratio, coef;
} ColumnWeights;

#define INLINE 16 /* tokens up to this many bytes are kept in their slot */

/* A slot holds what a hit needs, the column's weights included: the tables are far larger
 * than the CPU's caches, and each separate array would be one more miss per n-gram. A token
 * short enough is compared in its slot (almost all are), a longer one in the arena. */
typedef struct {
    uint64_t hash; /* 0: empty */
    union {
        char text[INLINE]; /* len <= INLINE */
        int64_t start;     /* in the arena, len > INLINE */
    } at;
    int32_t id, len;
    int32_t unigram; /* the token's unigram column, or -1 */
    int32_t pad;
    ColumnWeights w; /* the unigram column's: 64 bytes in all, one cache line */
} TokenSlot;

_Static_assert(sizeof(TokenSlot) == 64, "a token slot is one cache line");

static const char *slot_text(const char *arena, const TokenSlot *slot) {
    return slot->len <= INLINE ? slot->at.text : arena + slot->at.start;
}

typedef struct {
    int64_t key; /* -1: empty */
    ColumnWeights w; /* 32 bytes in all: a slot never straddles two cache lines */
} KeySlot;

typedef struct {
    PyObject_HEAD Cleaning cleaning;
    char *arena;
    TokenSlot *tok_table; /* vocabulary tokens (UTF-8), open addressing */
    size_t tok_mask;
    int64_t unknown; /* = base - 1 */
    int64_t base, starts[4];
    int low, high;
    KeySlot *key_table; /* n-gram keys (n >= 2) → local column */
    size_t key_mask;
    Py_ssize_t size, offset;
    ColumnWeights *weights; /* by local column, while the tables are built */
    int has_idf;
    int has_ratio, renorm, binary, sublinear, norm; /* norm: 0 none, 1 l2, 2 l1 */
    double intercept;
    /* per-review scratch: a small set of the review's distinct columns, each known by its
     * weights' address (one slot per column: a token's for unigrams, a key's for n-grams) */
    const ColumnWeights **set_column; /* NULL: empty */
    int32_t *set_slot;
    size_t set_mask;
    const ColumnWeights **slot_column;
    double *slot_count;
    ColumnWeights *slot_weights;
    Py_ssize_t slot_cap;
    int64_t *ids;
    const TokenSlot **found; /* each token's slot, NULL for an unknown one */
    uint64_t *tok_hash; /* the review's tokens: hash, start in k->clean, length */
    Py_ssize_t *tok_start, *tok_len;
    int64_t *want_key; /* the review's n-gram keys (n >= 2) and their first slots */
    size_t *want_slot;
    Py_ssize_t ids_cap;
    Buf clean, spare;
} Kernel;

/* The per-review scratch sized by a review's n-grams (its distinct-column set), and by its
 * tokens: freed before they grow, and with the kernel. */
static void free_column_scratch(Kernel *k) {
    free(k->set_column);
    free(k->set_slot);
    free((void *)k->slot_column);
    free(k->slot_count);
    free(k->slot_weights);
}

static void free_token_scratch(Kernel *k) {
    free(k->ids);
    free((void *)k->found);
    free(k->want_key);
    free(k->want_slot);
    free(k->tok_hash);
    free(k->tok_start);
    free(k->tok_len);
}

static void kernel_dealloc(Kernel *k) {
    free(k->arena);
    free(k->tok_table);
    free(k->key_table);
    free(k->weights);
    free_column_scratch(k);
    free_token_scratch(k);
    free(k->clean.data);
    free(k->spare.data);
    Py_TYPE(k)->tp_free((PyObject *)k);
}

static int get_buffer(PyObject *obj, Py_buffer *view, const char *format, Py_ssize_t itemsize,
                      const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != itemsize || view->format == NULL || strchr(format, view->format[0]) == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous array of '%s'", name, format);
        PyBuffer_Release(view);
        view->obj = NULL;
        return -1;
    }
    return 0;
}

static uint64_t token_hash(const char *s, Py_ssize_t n) {
    uint64_t h = hash_bytes(s, n);
    return h ? h : 1; /* 0 marks an empty slot */
}

static const TokenSlot *token_find(const Kernel *k, const char *s, Py_ssize_t n, uint64_t hash) {
    size_t h = (size_t)hash & k->tok_mask;
    for (;;) {
        const TokenSlot *slot = &k->tok_table[h];
        if (slot->hash == 0)
            return NULL;
        if (slot->hash == hash && slot->len == n && memcmp(slot_text(k->arena, slot), s, (size_t)n) == 0)
            return slot;
        h = (h + 1) & k->tok_mask;
    }
}

static const TokenSlot *token_lookup(const Kernel *k, const char *s, Py_ssize_t n) {
    return token_find(k, s, n, token_hash(s, n));
}

static const KeySlot *probe_from(const Kernel *k, int64_t key, size_t h) {
    for (;;) {
        const KeySlot *slot = &k->key_table[h];
        if (slot->key == key)
            return slot;
        if (slot->key < 0)
            return NULL;
        h = (h + 1) & k->key_mask;
    }
}

static int build_tokens(Kernel *k, PyObject *tokens, const int64_t *unigram_column) {
    Py_ssize_t count = PyList_GET_SIZE(tokens), total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *t = PyList_GET_ITEM(tokens, i);
        if (!PyUnicode_Check(t)) {
            PyErr_SetString(PyExc_TypeError, "tokens must be str");
            return -1;
        }
        Py_ssize_t n;
        if (PyUnicode_AsUTF8AndSize(t, &n) == NULL)
            return -1;
        total += n;
    }
    size_t size = table_size(count);
    k->arena = malloc((size_t)total + 1);
    k->tok_table = table_alloc(size * sizeof(TokenSlot));
    if (!k->arena || !k->tok_table) {
        PyErr_NoMemory();
        return -1;
    }
    k->tok_mask = size - 1;
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *t = PyList_GET_ITEM(tokens, i);
        Py_ssize_t n;
        const char *utf8 = PyUnicode_AsUTF8AndSize(t, &n); /* cached by the str itself */
        if (utf8 == NULL)
            return -1;
        memcpy(k->arena + at, utf8, (size_t)n);
        uint64_t hash = token_hash(k->arena + at, n);
        size_t h = (size_t)hash & k->tok_mask;
        TokenSlot *slot = &k->tok_table[h];
        while (slot->hash != 0 && !(slot->hash == hash && slot->len == n &&
                                    memcmp(slot_text(k->arena, slot), k->arena + at, (size_t)n) == 0)) {
            h = (h + 1) & k->tok_mask;
            slot = &k->tok_table[h];
        }
        /* a duplicate token keeps its last id, as dict((token, i) for ...) does */
        slot->hash = hash;
        slot->len = (int32_t)n;
        if (n <= INLINE)
            memcpy(slot->at.text, k->arena + at, (size_t)n);
        else
            slot->at.start = at;
        slot->id = (int32_t)i;
        slot->unigram = (int32_t)unigram_column[i];
        if (slot->unigram >= 0)
            slot->w = k->weights[slot->unigram];
        at += n;
    }
    return 0;
}

static int build_keys(Kernel *k, const int64_t *key, Py_ssize_t count) {
    size_t size = table_size(count);
    k->key_table = table_alloc(sizeof(KeySlot) * size);
    if (!k->key_table) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t h = 0; h < size; h++)
        k->key_table[h].key = -1; /* keys are >= 0 */
    k->key_mask = size - 1;
    for (Py_ssize_t column = 0; column < count; column++) {
        if (key[column] < k->base)
            continue; /* unigrams: found through their token */
        size_t h = (size_t)mix64((uint64_t)key[column]) & k->key_mask;
        while (k->key_table[h].key >= 0 && k->key_table[h].key != key[column])
            h = (h + 1) & k->key_mask;
        k->key_table[h].key = key[column];
        k->key_table[h].w = k->weights[column];
    }
    return 0;
}

static int build_weights(Kernel *k, PyObject *coef_obj, PyObject *ratio_obj, PyObject *idf_obj) {
    Py_buffer coef, ratio = {0}, idf = {0};
    int failed = 0;
    if (get_buffer(coef_obj, &coef, "d", 8, "coef") < 0)
        return -1;
    if (ratio_obj != Py_None && get_buffer(ratio_obj, &ratio, "d", 8, "ratio") < 0)
        failed = 1;
    if (!failed && idf_obj != Py_None && get_buffer(idf_obj, &idf, "d", 8, "idf") < 0)
        failed = 1;
    Py_ssize_t need = k->offset + k->size;
    if (!failed && (coef.len / 8 < need || (ratio.obj && ratio.len / 8 < need) ||
                    (idf.obj && idf.len / 8 < k->size))) {
        PyErr_SetString(PyExc_ValueError, "coef, ratio or idf shorter than the block");
        failed = 1;
    }
    if (!failed) {
        k->weights = malloc(sizeof(ColumnWeights) * (size_t)(k->size + 1));
        if (!k->weights) {
            PyErr_NoMemory();
            failed = 1;
        }
    }
    if (!failed) {
        const double *c = coef.buf, *r = ratio.obj ? ratio.buf : NULL;
        const double *f = idf.obj ? idf.buf : NULL;
        for (Py_ssize_t col = 0; col < k->size; col++) {
            k->weights[col].idf = f ? f[col] : 1.0;
            k->weights[col].coef = c[col + k->offset];
            k->weights[col].ratio = r ? r[col + k->offset] : 1.0;
        }
        k->has_ratio = r != NULL;
        k->has_idf = f != NULL;
    }
    PyBuffer_Release(&coef);
    if (ratio.obj)
        PyBuffer_Release(&ratio);
    if (idf.obj)
        PyBuffer_Release(&idf);
    return failed ? -1 : 0;
}

static int kernel_init(Kernel *k, PyObject *args, PyObject *kwds) {
    static char *names[] = {"tokens",   "keys",      "unigram_column", "base",     "starts",
                            "low",      "high",      "offset",         "coef",     "ratio",
                            "renorm",   "intercept", "binary",         "sublinear", "idf",
                            "norm",     "remove_html", "remove_urls",  "expand_negations",
                            "lowercase", "separate_punctuation", NULL};
    PyObject *tokens, *keys, *unigram_column, *starts, *coef, *ratio, *idf;
    long long base;
    int low, high, renorm, binary, sublinear, norm;
    Py_ssize_t offset;
    double intercept;
    Cleaning c;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OOLO!iinOOpdppOippppp", names, &PyList_Type, &tokens,
                                     &keys, &unigram_column, &base, &PyList_Type, &starts, &low, &high,
                                     &offset, &coef, &ratio, &renorm, &intercept, &binary, &sublinear, &idf,
                                     &norm, &c.remove_html, &c.remove_urls, &c.expand_negations, &c.lowercase,
                                     &c.separate_punctuation))
        return -1;
    if (high < 1 || high > 3 || low < 1 || low > high || PyList_GET_SIZE(starts) < high + 1) {
        PyErr_SetString(PyExc_ValueError, "n-grams of 1 to 3 words only");
        return -1;
    }
    k->cleaning = c;
    k->base = base;
    k->unknown = base - 1;
    k->low = low;
    k->high = high;
    k->offset = offset;
    k->renorm = renorm;
    k->intercept = intercept;
    k->binary = binary;
    k->sublinear = sublinear;
    k->norm = norm;
    for (int i = 0; i <= high; i++) {
        k->starts[i] = PyLong_AsLongLong(PyList_GET_ITEM(starts, i));
        if (PyErr_Occurred())
            return -1;
    }
    Py_buffer keys_view, unigrams_view;
    if (get_buffer(keys, &keys_view, "lq", 8, "keys") < 0)
        return -1;
    if (get_buffer(unigram_column, &unigrams_view, "lq", 8, "unigram_column") < 0) {
        PyBuffer_Release(&keys_view);
        return -1;
    }
    int failed = 0;
    k->size = keys_view.len / 8;
    if (unigrams_view.len / 8 != base || PyList_GET_SIZE(tokens) != base - 1) {
        PyErr_SetString(PyExc_ValueError, "unigram_column must have base entries, tokens base - 1");
        failed = 1;
    }
    if (!failed)
        failed = build_weights(k, coef, ratio, idf) < 0 || build_tokens(k, tokens, unigrams_view.buf) < 0 ||
                 build_keys(k, keys_view.buf, k->size) < 0;
    free(k->weights); /* copied into the slots */
    k->weights = NULL;
    PyBuffer_Release(&keys_view);
    PyBuffer_Release(&unigrams_view);
    return failed ? -1 : 0;
}

/* Scratch for a review's distinct columns, sized by its token count. */
static int reserve_columns(Kernel *k, Py_ssize_t tokens) {
    Py_ssize_t grams = tokens * 3 + 4;
    if (grams > k->slot_cap) {
        size_t set = 16;
        while (set < (size_t)grams * 2)
            set *= 2;
        free_column_scratch(k);
        k->slot_column = malloc(sizeof(ColumnWeights *) * (size_t)grams);
        k->slot_count = malloc(sizeof(double) * (size_t)grams);
        k->slot_weights = malloc(sizeof(ColumnWeights) * (size_t)grams);
        k->set_column = malloc(sizeof(ColumnWeights *) * set);
        k->set_slot = malloc(sizeof(int32_t) * set);
        if (!k->slot_column || !k->slot_count || !k->slot_weights || !k->set_column || !k->set_slot) {
            k->slot_cap = 0;
            return -1;
        }
        for (size_t h = 0; h < set; h++)
            k->set_column[h] = NULL;
        k->set_mask = set - 1;
        k->slot_cap = grams;
    }
    return 0;
}

/* Scratch for a review's tokens and n-grams, sized by its token count or a bound on it. */
static int reserve_tokens(Kernel *k, Py_ssize_t tokens) {
    if (tokens + 4 > k->ids_cap) {
        free_token_scratch(k);
        k->tok_hash = malloc(sizeof(uint64_t) * (size_t)(tokens + 4));
        k->tok_start = malloc(sizeof(Py_ssize_t) * (size_t)(tokens + 4));
        k->tok_len = malloc(sizeof(Py_ssize_t) * (size_t)(tokens + 4));
        k->ids = malloc(sizeof(int64_t) * (size_t)(tokens + 4));
        k->found = malloc(sizeof(TokenSlot *) * (size_t)(tokens + 4));
        k->want_key = malloc(sizeof(int64_t) * (size_t)(tokens * 3 + 4));
        k->want_slot = malloc(sizeof(size_t) * (size_t)(tokens * 3 + 4));
        if (!k->ids || !k->found || !k->want_key || !k->want_slot || !k->tok_hash ||
            !k->tok_start || !k->tok_len) {
            k->ids_cap = 0;
            return -1;
        }
        k->ids_cap = tokens + 4;
    }
    return 0;
}

static int reserve_review(Kernel *k, Py_ssize_t tokens) {
    return reserve_columns(k, tokens) < 0 || reserve_tokens(k, tokens) < 0 ? -1 : 0;
}

/* One more occurrence of the column whose weights are `w` (the set is cleared after each review). */
static void count_column(Kernel *k, const ColumnWeights *w, Py_ssize_t *distinct) {
    size_t h = (size_t)mix64((uint64_t)(uintptr_t)w) & k->set_mask;
    while (k->set_column[h] != NULL) {
        if (k->set_column[h] == w) {
            k->slot_count[k->set_slot[h]] += 1.0;
            return;
        }
        h = (h + 1) & k->set_mask;
    }
    k->set_column[h] = w;
    k->set_slot[h] = (int32_t)*distinct;
    k->slot_column[*distinct] = w;
    k->slot_count[*distinct] = 1.0;
    k->slot_weights[*distinct] = *w;
    (*distinct)++;
}

/* Empty the set again: each column is found by probing past slots already emptied (it is
 * certainly there), so no chain is cut short. */
static void clear_set(Kernel *k, Py_ssize_t distinct) {
    for (Py_ssize_t d = 0; d < distinct; d++) {
        size_t h = (size_t)mix64((uint64_t)(uintptr_t)k->slot_column[d]) & k->set_mask;
        while (k->set_column[h] != k->slot_column[d])
            h = (h + 1) & k->set_mask;
        k->set_column[h] = NULL;
    }
}

static void add_token(Kernel *k, const char *s, Py_ssize_t n, Py_ssize_t at) {
    const TokenSlot *slot = token_lookup(k, s, n);
    k->ids[at] = slot ? slot->id : k->unknown;
    k->found[at] = slot;
}

static int score_ids(Kernel *k, Py_ssize_t count, double *decision, int64_t *tokens_out,
                     int64_t *known_out);

/* One cleaned review in k->clean: its decision, token count and known unigrams. */
static int score_cleaned(Kernel *k, double *decision, int64_t *tokens_out, int64_t *known_out) {
    const char *s = k->clean.data;
    Py_ssize_t n = k->clean.len, count = 0, i = 0;
    /* a token and a space at least per token: the token scratch for that many, the column
     * scratch (probed at random: kept small) for the tokens found */
    if (reserve_tokens(k, n / 2 + 1) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    /* As with n-grams below: every token's slot is asked for (prefetch) before any is probed,
     * so the misses overlap. */
    while (i < n) {
        while (i < n && utf8_space((unsigned char)s[i]))
            i++;
        if (i >= n)
            break;
        Py_ssize_t start = i;
        while (i < n && !utf8_space((unsigned char)s[i]))
            i++;
        uint64_t hash = token_hash(s + start, i - start);
        k->tok_hash[count] = hash;
        k->tok_start[count] = start;
        k->tok_len[count++] = i - start;
    }
    if (reserve_columns(k, count) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t t = 0; t < count && t < AHEAD; t++)
        __builtin_prefetch(&k->tok_table[(size_t)k->tok_hash[t] & k->tok_mask]);
    for (Py_ssize_t t = 0; t < count; t++) {
        if (t + AHEAD < count)
            __builtin_prefetch(&k->tok_table[(size_t)k->tok_hash[t + AHEAD] & k->tok_mask]);
        const TokenSlot *slot = token_find(k, s + k->tok_start[t], k->tok_len[t], k->tok_hash[t]);
        k->ids[t] = slot ? slot->id : k->unknown;
        k->found[t] = slot;
    }
    return score_ids(k, count, decision, tokens_out, known_out);
}

/* The review's tokens are in k->ids / k->unigrams (count of them): n-grams, weights, decision. */
static int score_ids(Kernel *k, Py_ssize_t count, double *decision, int64_t *tokens_out,
                     int64_t *known_out) {
    int64_t known = 0;
    for (Py_ssize_t t = 0; t < count; t++)
        if (k->found[t] && k->found[t]->unigram >= 0)
            known++;
    Py_ssize_t distinct = 0;
    const int64_t *ids = k->ids;
    const uint64_t base = (uint64_t)k->base;
    if (k->low == 1)
        for (Py_ssize_t t = 0; t < count; t++)
            if (k->found[t] && k->found[t]->unigram >= 0)
                count_column(k, &k->found[t]->w, &distinct);
    /* The tables are far larger than the CPU's caches: compute every n-gram's key and slot
     * first, asking for each slot's cache line ahead (prefetch), then probe. The misses then
     * overlap instead of following one another. */
    Py_ssize_t wanted = 0;
    for (int g = 2; g <= k->high; g++) {
        if (g < k->low)
            continue;
        for (Py_ssize_t t = 0; t + g <= count; t++) {
            /* unsigned: wraps as numpy's int64 arithmetic does, never undefined */
            uint64_t key = 0;
            int valid = 1;
            for (int m = 0; m < g; m++) {
                if (ids[t + m] == k->unknown) {
                    valid = 0;
                    break;
                }
                key = key * base + (uint64_t)ids[t + m];
            }
            if (!valid)
                continue;
            key += (uint64_t)k->starts[g - 1];
            size_t h = (size_t)mix64(key) & k->key_mask;
            k->want_key[wanted] = (int64_t)key;
            k->want_slot[wanted++] = h;
        }
    }
    for (Py_ssize_t w = 0; w < wanted && w < AHEAD; w++)
        __builtin_prefetch(&k->key_table[k->want_slot[w]]);
    for (Py_ssize_t w = 0; w < wanted; w++) {
        if (w + AHEAD < wanted)
            __builtin_prefetch(&k->key_table[k->want_slot[w + AHEAD]]);
        const KeySlot *slot = probe_from(k, k->want_key[w], k->want_slot[w]);
        if (slot)
            count_column(k, &slot->w, &distinct);
    }
    clear_set(k, distinct);
    /* TfidfVectorizer's values, then the NB ratios, re-normalisation and the dot product */
    double *value = k->slot_count, total = 0.0;
    for (Py_ssize_t d = 0; d < distinct; d++) {
        double tf = k->binary ? 1.0 : value[d];
        if (k->sublinear && !k->binary)
            tf = log(tf) + 1.0;
        if (k->has_idf)
            tf *= k->slot_weights[d].idf;
        value[d] = tf;
    }
    if (k->norm) {
        for (Py_ssize_t d = 0; d < distinct; d++)
            total += k->norm == 1 ? value[d] * value[d] : fabs(value[d]);
        double norm = k->norm == 1 ? sqrt(total) : total;
        if (k->norm == 1 && norm == 0.0)
            norm = 1.0;
        for (Py_ssize_t d = 0; d < distinct; d++)
            value[d] /= norm;
    }
    double sum = 0.0, squares = 0.0;
    for (Py_ssize_t d = 0; d < distinct; d++) {
        const ColumnWeights *w = &k->slot_weights[d];
        double v = value[d] * w->ratio;
        squares += v * v;
        sum += v * w->coef;
    }
    if (k->has_ratio && k->renorm) {
        double norm = sqrt(squares);
        sum /= norm == 0.0 ? 1.0 : norm; /* sum(v / norm * coef) = sum(v * coef) / norm */
    }
    *decision = k->intercept + sum;
    *tokens_out = count;
    *known_out = known;
    return 0;
}


/* The output arrays of `n` reviews, in this order (the first `count` of them): decision
 * (float64), tokens and known (int64), native (uint8); each a writable buffer long enough. */
static int get_outputs(PyObject **objs, Py_buffer *out, int count, Py_ssize_t n) {
    static const char *formats[4] = {"d", "lq", "lq", "B?"};
    static const Py_ssize_t sizes[4] = {8, 8, 8, 1};
    static const char *names[4] = {"decision", "tokens", "known", "native"};
    for (int a = 0; a < count; a++) {
        if (get_buffer(objs[a], &out[a], formats[a], sizes[a], names[a]) < 0 ||
            out[a].len / sizes[a] < n) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "%s is shorter than the reviews", names[a]);
            return -1;
        }
    }
    return 0;
}

/* score(texts, decision, tokens, known, native) -> reviews handled here. Writes into the four
 * arrays (float64, int64, int64, uint8) at each review's index; native[i] = 0: review i was not
 * handled (not Latin-1, or not a str) and its other entries are untouched. */
static PyObject *kernel_score(Kernel *k, PyObject *args) {
    PyObject *texts, *objs[4];
    if (!PyArg_ParseTuple(args, "OOOOO", &texts, &objs[0], &objs[1], &objs[2], &objs[3]))
        return NULL;
    PyObject *seq = PySequence_Fast(texts, "texts must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_buffer out[4] = {{0}};
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), handled = 0;
    int failed = get_outputs(objs, out, 4, n) < 0;
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        PyObject *text = PySequence_Fast_GET_ITEM(seq, i);
        uint8_t *native = out[3].buf;
        native[i] = 0;
        if (!PyUnicode_Check(text) || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND)
            continue;
        if (clean_latin1(&k->cleaning, PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), &k->clean,
                        &k->spare) < 0) {
            PyErr_NoMemory();
            failed = 1;
            break;
        }
        if (score_cleaned(k, (double *)out[0].buf + i, (int64_t *)out[1].buf + i, (int64_t *)out[2].buf + i) <
            0) {
            failed = 1;
            break;
        }
        native[i] = 1;
        handled++;
    }
    for (int a = 0; a < 4; a++)
        if (out[a].obj)
            PyBuffer_Release(&out[a]);
    Py_DECREF(seq);
    return failed ? NULL : PyLong_FromSsize_t(handled);
}

/* score_tokens(token_lists, decision, tokens, known): as score, for reviews cleaned elsewhere
 * (the Python path's clean_words, for what `score` does not handle): each a list of str. */
static PyObject *kernel_score_tokens(Kernel *k, PyObject *args) {
    PyObject *lists, *objs[3];
    if (!PyArg_ParseTuple(args, "O!OOO", &PyList_Type, &lists, &objs[0], &objs[1], &objs[2]))
        return NULL;
    Py_buffer out[3] = {{0}};
    Py_ssize_t n = PyList_GET_SIZE(lists);
    int failed = get_outputs(objs, out, 3, n) < 0;
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        PyObject *words = PyList_GET_ITEM(lists, i);
        if (!PyList_Check(words)) {
            PyErr_SetString(PyExc_TypeError, "each review is a list of tokens");
            failed = 1;
            break;
        }
        Py_ssize_t count = PyList_GET_SIZE(words);
        if (reserve_review(k, count) < 0) {
            PyErr_NoMemory();
            failed = 1;
            break;
        }
        for (Py_ssize_t w = 0; w < count && !failed; w++) {
            Py_ssize_t size;
            const char *utf8 = PyUnicode_Check(PyList_GET_ITEM(words, w))
                                   ? PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(words, w), &size)
                                   : NULL;
            if (utf8 == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "tokens must be str");
                failed = 1;
                break;
            }
            add_token(k, utf8, size, w);
        }
        if (!failed && score_ids(k, count, (double *)out[0].buf + i, (int64_t *)out[1].buf + i,
                                 (int64_t *)out[2].buf + i) < 0)
            failed = 1;
    }
    for (int a = 0; a < 3; a++)
        if (out[a].obj)
            PyBuffer_Release(&out[a]);
    return failed ? NULL : PyLong_FromSsize_t(n);
}

static PyMethodDef kernel_methods[] = {
    {"score", (PyCFunction)kernel_score, METH_VARARGS,
     "score(texts, decision, tokens, known, native) -> number of reviews scored here"},
    {"score_tokens", (PyCFunction)kernel_score_tokens, METH_VARARGS,
     "score_tokens(token_lists, decision, tokens, known) -> number of reviews scored"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "imdb_sentiment.runtime._kernel.Kernel",
    .tp_basicsize = sizeof(Kernel),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A compiled word-n-gram scorer for Latin-1 reviews.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)kernel_init,
    .tp_dealloc = (destructor)kernel_dealloc,
    .tp_methods = kernel_methods,
};

/* clean(text, remove_html, remove_urls, expand_negations, lowercase, separate_punctuation)
 * -> list of tokens, or None when the text is not handled here (not Latin-1). */
static PyObject *module_clean(PyObject *self, PyObject *args) {
    PyObject *text;
    Cleaning c;
    if (!PyArg_ParseTuple(args, "Uppppp", &text, &c.remove_html, &c.remove_urls, &c.expand_negations,
                          &c.lowercase, &c.separate_punctuation))
        return NULL;
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND)
        Py_RETURN_NONE;
    Buf b = {0}, spare = {0};
    if (clean_latin1(&c, PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), &b, &spare) < 0) {
        free(b.data);
        free(spare.data);
        return PyErr_NoMemory();
    }
    PyObject *tokens = PyList_New(0);
    Py_ssize_t i = 0;
    while (tokens && i < b.len) {
        while (i < b.len && utf8_space((unsigned char)b.data[i]))
            i++;
        if (i >= b.len)
            break;
        Py_ssize_t start = i;
        while (i < b.len && !utf8_space((unsigned char)b.data[i]))
            i++;
        PyObject *token = PyUnicode_FromStringAndSize(b.data + start, i - start);
        if (token == NULL || PyList_Append(tokens, token) < 0) {
            Py_XDECREF(token);
            Py_CLEAR(tokens);
            break;
        }
        Py_DECREF(token);
    }
    free(b.data);
    free(spare.data);
    return tokens;
}

static PyMethodDef module_methods[] = {
    {"clean", module_clean, METH_VARARGS, "The tokens clean_words gives a Latin-1 text, or None."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", NULL, -1, module_methods};

PyMODINIT_FUNC PyInit__kernel(void) {
    if (init_latin1() < 0 || PyType_Ready(&KernelType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&KernelType);
    if (PyModule_AddObject(m, "Kernel", (PyObject *)&KernelType) < 0) {
        Py_DECREF(&KernelType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
