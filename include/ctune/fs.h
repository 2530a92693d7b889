// fs.h: files and paths. Whole-file reads, read-only mmap, atomic writes
// (data goes to "<path>.tmp.<pid>", is flushed, then renamed over <path>, so a
// reader never sees a partial file and a crash leaves the old file intact),
// and temp folders "<path>.tmp-<pid>-XXXXXX" for outputs that are folders.
// Both temp names carry the writer's PID, so a later run can tell the ones a
// killed process left behind (owner gone) from those of a live writer.
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
// begin first removes stale temp files and folders of path (ct_remove_stale_temps).
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

// Removes a file, or a folder and everything under it (symlinks are removed,
// not followed). A missing path is not an error.
ct_status ct_remove_tree(const char *path, ct_error *err);

// ---- temp names with an owner PID, and stale ones

// The owner PID in name when name is a temp name of base: "<base>.tmp.<pid>"
// (atomic file) or "<base>.tmp-<pid>-XXXXXX" (temp folder, 6 characters of
// mkdtemp). base NULL accepts any base. Returns 0 when name is not one.
long ct_temp_name_pid(const char *name, const char *base);
// True only when no process has that PID (kill(pid, 0) fails with ESRCH).
// A process of another user counts as alive; so does a reused PID.
bool ct_pid_is_dead(long pid);
// Removes the temp files and folders in dir that belong to base (any base when
// NULL) and whose owner is dead; never those of a live process, nor names
// without a PID. Returns how many it removed (errors are ignored: best effort).
int ct_remove_stale_temps(const char *dir, const char *base);
// Creates the temp folder "<path>.tmp-<pid>-XXXXXX" beside path (making the
// parent folders, mode as mkdir's under the umask) into tmp (size n), after
// removing the stale temps of path. Rename it to path when complete.
ct_status ct_temp_dir_create(const char *path, char *tmp, size_t n, ct_error *err);

#endif
