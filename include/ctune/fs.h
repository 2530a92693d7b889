// fs.h: files and paths. Whole-file reads, read-only mmap, and atomic writes
// (data goes to "<path>.tmp.<pid>", is flushed, then renamed over <path>, so a
// reader never sees a partial file and a crash leaves the old file intact).
#ifndef CTUNE_FS_H
#define CTUNE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "ctune/error.h"

// Reads a whole file into a NUL-terminated heap buffer (*out, free() it).
ct_status ct_read_file(const char *path, char **out, size_t *len, ct_error *err);

// Read-only mapping of a whole file. An empty file maps to data=NULL, size=0.
typedef struct ct_mmap {
    void *data;
    size_t size;
} ct_mmap;
ct_status ct_mmap_open(ct_mmap *m, const char *path, ct_error *err);
void ct_mmap_close(ct_mmap *m);

// Atomic writer: begin, fwrite into w->f, then commit (or abort on failure).
typedef struct ct_atomic_file {
    FILE *f;
    char path[4096];
    char tmp[4200];
} ct_atomic_file;
ct_status ct_atomic_begin(ct_atomic_file *w, const char *path, ct_error *err);
ct_status ct_atomic_commit(ct_atomic_file *w, ct_error *err); // fflush+fsync+rename
void ct_atomic_abort(ct_atomic_file *w);                     // removes the temp file
ct_status ct_write_file_atomic(const char *path, const void *data, size_t len, ct_error *err);

bool ct_path_exists(const char *path);
bool ct_is_dir(const char *path);
// Joins a directory and a file name into out (size n). Fails if it does not fit.
ct_status ct_path_join(char *out, size_t n, const char *dir, const char *name, ct_error *err);
// mkdir -p
ct_status ct_mkdir_p(const char *path, ct_error *err);

#endif
