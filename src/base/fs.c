#include "ctune/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

ct_status ct_read_file(const char *path, char **out, size_t *len, ct_error *err) {
    *out = NULL;
    if (len)
        *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ct_fail(err, CT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return ct_fail(err, CT_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return ct_fail(err, CT_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    if (n && fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return ct_fail(err, CT_ERR_IO, "%s: read failed", path);
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    if (len)
        *len = n;
    return CT_OK;
}

ct_status ct_mmap_open(ct_mmap *m, const char *path, ct_error *err) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return ct_fail(err, CT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ct_fail(err, CT_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size > 0) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return ct_fail(err, CT_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
        m->data = p;
        m->size = (size_t)sb.st_size;
    }
    close(fd);
    return CT_OK;
}

void ct_mmap_close(ct_mmap *m) {
    if (m->data)
        munmap(m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

ct_status ct_atomic_begin(ct_atomic_file *w, const char *path, ct_error *err) {
    w->f = NULL;
    if (strlen(path) >= sizeof w->path)
        return ct_fail(err, CT_ERR_INVALID, "%s: path too long", path);
    strcpy(w->path, path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f)
        return ct_fail(err, CT_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
    return CT_OK;
}

ct_status ct_atomic_commit(ct_atomic_file *w, ct_error *err) {
    if (!w->f)
        return ct_fail(err, CT_ERR_INVALID, "%s: writer not open", w->path);
    int bad = ferror(w->f) || fflush(w->f) != 0 || fsync(fileno(w->f)) != 0;
    int saved = errno;
    if (fclose(w->f) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    w->f = NULL;
    if (bad) {
        unlink(w->tmp);
        return ct_fail(err, CT_ERR_IO, "%s: write failed: %s", w->path, strerror(saved));
    }
    if (rename(w->tmp, w->path) != 0) {
        saved = errno;
        unlink(w->tmp);
        return ct_fail(err, CT_ERR_IO, "%s: cannot rename into place: %s", w->path, strerror(saved));
    }
    return CT_OK;
}

void ct_atomic_abort(ct_atomic_file *w) {
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
        unlink(w->tmp);
    }
}

ct_status ct_write_file_atomic(const char *path, const void *data, size_t len, ct_error *err) {
    ct_atomic_file w;
    CT_TRY(ct_atomic_begin(&w, path, err));
    if (len && fwrite(data, 1, len, w.f) != len) {
        int saved = errno;
        ct_atomic_abort(&w);
        return ct_fail(err, CT_ERR_IO, "%s: write failed: %s", path, strerror(saved));
    }
    return ct_atomic_commit(&w, err);
}

bool ct_path_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

bool ct_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

ct_status ct_path_join(char *out, size_t n, const char *dir, const char *name, ct_error *err) {
    size_t dl = strlen(dir);
    int slash = dl > 0 && dir[dl - 1] != '/';
    int w = snprintf(out, n, "%s%s%s", dir, slash ? "/" : "", name);
    if (w < 0 || (size_t)w >= n)
        return ct_fail(err, CT_ERR_INVALID, "%s/%s: path too long", dir, name);
    return CT_OK;
}

ct_status ct_mkdir_p(const char *path, ct_error *err) {
    char buf[4096];
    if (strlen(path) >= sizeof buf)
        return ct_fail(err, CT_ERR_INVALID, "%s: path too long", path);
    strcpy(buf, path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return ct_fail(err, CT_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    if (!ct_is_dir(path))
        return ct_fail(err, CT_ERR_IO, "%s: exists and is not a directory", path);
    return CT_OK;
}
