// wasi-escape: each export tries one WASI way out of the sandbox through plain wasi-libc calls
// (which the preview-1 adapter turns into WASI 0.2 imports) and reports what it got, so the
// sandbox tests can assert it got nothing. Errors are reported, never trapped on.
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wasi/api.h>

#include "skill.h"

extern char **environ;

// Export arguments arrive as ptr+len without a NUL and are ours to free.
static char *take_cstr(skill_string_t *s) {
    char *c = malloc(s->len + 1);
    if (!c) abort();
    memcpy(c, s->ptr, s->len);
    c[s->len] = '\0';
    skill_string_free(s);
    return c;
}

// Results are copied into memory the generated post-return frees.
static void ret_str(skill_string_t *ret, const char *s) { skill_string_dup(ret, s); }

static void ret_error(skill_string_t *ret, int err) {
    char buf[256];
    snprintf(buf, sizeof buf, "error: %s", strerror(err));
    ret_str(ret, buf);
}

// A growable buffer for the multi-line answers.
typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static void buf_add(buf_t *b, const char *s) {
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static void ret_buf(skill_string_t *ret, buf_t *b, const char *if_empty) {
    ret_str(ret, b->len ? b->p : if_empty);
    free(b->p);
}

void exports_skill_read_file(skill_string_t *path, skill_string_t *ret) {
    char *p = take_cstr(path);
    FILE *f = fopen(p, "r");
    int err = errno;
    free(p);
    if (!f) return ret_error(ret, err);
    static char content[65536];
    size_t n = fread(content, 1, sizeof content - 1, f);
    content[n] = '\0';
    fclose(f);
    ret_str(ret, content);
}

void exports_skill_list_dir(skill_string_t *path, skill_string_t *ret) {
    char *p = take_cstr(path);
    DIR *d = opendir(p);
    int err = errno;
    free(p);
    if (!d) return ret_error(ret, err);
    buf_t b = {0};
    for (struct dirent *e; (e = readdir(d));) {
        buf_add(&b, e->d_name);
        buf_add(&b, "\n");
    }
    closedir(d);
    ret_buf(ret, &b, "(no entries)");
}

void exports_skill_env(skill_string_t *ret) {
    buf_t b = {0};
    for (char **e = environ; e && *e; e++) {
        buf_add(&b, *e);
        buf_add(&b, "\n");
    }
    const char *names[] = {"HOME", "PATH"};
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(names[i]);
        if (!v) continue;
        buf_add(&b, "getenv ");
        buf_add(&b, names[i]);
        buf_add(&b, "=");
        buf_add(&b, v);
        buf_add(&b, "\n");
    }
    ret_buf(ret, &b, "empty");
}

uint32_t exports_skill_args(void) {
    // A reactor has no main and so no argc: ask WASI directly, as a process start would.
    __wasi_size_t argc = 0, size = 0;
    return __wasi_args_sizes_get(&argc, &size) == 0 ? argc : 0;
}

void exports_skill_write_file(skill_string_t *path, skill_string_t *ret) {
    char *p = take_cstr(path);
    FILE *f = fopen(p, "w");
    int err = errno;
    free(p);
    if (!f) return ret_error(ret, err);
    const char data[] = "escaped\n";
    size_t n = fwrite(data, 1, sizeof data - 1, f);
    err = errno;
    if (fclose(f) != 0 || n != sizeof data - 1) return ret_error(ret, err ? err : errno);
    char msg[64];
    snprintf(msg, sizeof msg, "ok: wrote %zu bytes", n);
    ret_str(ret, msg);
}

uint64_t exports_skill_clock(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
