#include "ctune/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
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

// dir (size n) <- the folder of path ("." when it has none); *base <- its last part.
static void split_path(const char *path, char *dir, size_t n, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (!slash)
        snprintf(dir, n, ".");
    else if (slash == path)
        snprintf(dir, n, "/");
    else
        snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

static void remove_stale_temps_of(const char *path) {
    char dir[4096];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    if (*base)
        ct_remove_stale_temps(dir, base);
}

ct_status ct_atomic_begin(ct_atomic_file *w, const char *path, ct_error *err) {
    w->f = NULL;
    if (strlen(path) >= sizeof w->path)
        return ct_fail(err, CT_ERR_INVALID, "%s: path too long", path);
    strcpy(w->path, path);
    remove_stale_temps_of(path);
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

ct_status ct_remove_tree(const char *path, ct_error *err) {
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? CT_OK : ct_fail(err, CT_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return ct_fail(err, CT_ERR_IO, "%s: cannot open folder: %s", path, strerror(errno));
        ct_status st = CT_OK;
        for (struct dirent *e; st == CT_OK && (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char child[4096];
            st = ct_path_join(child, sizeof child, path, e->d_name, err);
            if (st == CT_OK)
                st = ct_remove_tree(child, err);
        }
        closedir(d);
        CT_TRY(st);
        if (rmdir(path) != 0)
            return ct_fail(err, CT_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        return CT_OK;
    }
    if (unlink(path) != 0 && errno != ENOENT)
        return ct_fail(err, CT_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return CT_OK;
}

// ---- temp names with an owner PID

// Parses "<digits>" at s up to a byte in stop (or the end); *end after it.
static long parse_pid(const char *s, const char **end) {
    long pid = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9' && p - s < 10)
        pid = pid * 10 + (*p++ - '0');
    *end = p;
    return p > s && *s != '0' && pid <= INT_MAX ? pid : 0;
}

// The PID of a temp suffix at t (".tmp.<pid>" or ".tmp-<pid>-XXXXXX"), else 0.
static long temp_suffix_pid(const char *t) {
    if (strncmp(t, ".tmp", 4) != 0 || (t[4] != '.' && t[4] != '-'))
        return 0;
    const char *end;
    long pid = parse_pid(t + 5, &end);
    if (!pid)
        return 0;
    if (t[4] == '.')
        return *end ? 0 : pid;
    if (*end != '-' || strlen(end + 1) != 6)
        return 0;
    for (const char *p = end + 1; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    return pid;
}

long ct_temp_name_pid(const char *name, const char *base) {
    if (base) {
        size_t bl = strlen(base);
        return bl && !strncmp(name, base, bl) ? temp_suffix_pid(name + bl) : 0;
    }
    for (const char *t = strstr(name, ".tmp"); t; t = strstr(t + 1, ".tmp")) {
        long pid = t > name ? temp_suffix_pid(t) : 0;
        if (pid)
            return pid;
    }
    return 0;
}

bool ct_pid_is_dead(long pid) {
    return pid > 0 && pid <= INT_MAX && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int ct_remove_stale_temps(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char path[4096];
        if (!ct_pid_is_dead(ct_temp_name_pid(e->d_name, base)) ||
            ct_path_join(path, sizeof path, dir, e->d_name, NULL) != CT_OK)
            continue;
        if (ct_remove_tree(path, NULL) == CT_OK)
            removed++;
    }
    closedir(d);
    return removed;
}

ct_status ct_temp_dir_create(const char *path, char *tmp, size_t n, ct_error *err) {
    char dir[4096];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    if (!*base)
        return ct_fail(err, CT_ERR_INVALID, "%s: not a folder name", path);
    CT_TRY(ct_mkdir_p(dir, err));
    ct_remove_stale_temps(dir, base);
    if ((size_t)snprintf(tmp, n, "%s.tmp-%ld-XXXXXX", path, (long)getpid()) >= n)
        return ct_fail(err, CT_ERR_INVALID, "%s: path too long", path);
    if (!mkdtemp(tmp))
        return ct_fail(err, CT_ERR_IO, "%s: cannot create a folder there: %s", path, strerror(errno));
    mode_t mask = umask(0); // mkdtemp makes it 0700; the result should look like mkdir's
    umask(mask);
    chmod(tmp, 0777 & ~mask);
    return CT_OK;
}
