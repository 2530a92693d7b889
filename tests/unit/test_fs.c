// Unit tests: temp names with an owner PID and the removal of stale ones (fs.h).
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctune/fs.h"
#include "harness.h"

// The PID of a child that has exited and been reaped: no process has it.
static long dead_pid(void) {
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    waitpid(p, NULL, 0);
    return (long)p;
}

// Makes a fresh folder <tmpdir>/<name> and returns its path in buf.
static const char *fresh_dir(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", ct_test_tmpdir(), name);
    ct_remove_tree(buf, NULL);
    mkdir(buf, 0777);
    return buf;
}

static void touch(const char *dir, const char *name) {
    char p[4096];
    if (ct_path_join(p, sizeof p, dir, name, NULL) != CT_OK)
        return;
    FILE *f = fopen(p, "w");
    if (f) {
        fputs("x", f);
        fclose(f);
    }
}

static bool exists_in(const char *dir, const char *name) {
    char p[4096];
    return ct_path_join(p, sizeof p, dir, name, NULL) == CT_OK && ct_path_exists(p);
}

TEST(temp_name_pid_parses_both_forms) {
    CHECK_EQ(ct_temp_name_pid("out.tmp.1234", "out"), 1234);
    CHECK_EQ(ct_temp_name_pid("out.tmp-1234-aB3xYz", "out"), 1234);
    CHECK_EQ(ct_temp_name_pid("adapters.safetensors.tmp.77", NULL), 77);
    CHECK_EQ(ct_temp_name_pid("my.tmp.model.tmp-9-abcdef", NULL), 9);
}

TEST(temp_name_pid_rejects_other_names) {
    CHECK_EQ(ct_temp_name_pid("out", "out"), 0);
    CHECK_EQ(ct_temp_name_pid("out.tmp.1234", "other"), 0);
    CHECK_EQ(ct_temp_name_pid("out2.tmp.1234", "out"), 0);   // another output's temp
    CHECK_EQ(ct_temp_name_pid("out.tmp-aB3xYz", "out"), 0);  // old form: no PID, never judged
    CHECK_EQ(ct_temp_name_pid("out.tmp-12-aB3xY", "out"), 0); // suffix not 6 characters
    CHECK_EQ(ct_temp_name_pid("out.tmp-12-aB3xY!", "out"), 0);
    CHECK_EQ(ct_temp_name_pid("out.tmp.12x", "out"), 0);
    CHECK_EQ(ct_temp_name_pid("out.tmp.0", "out"), 0);
    CHECK_EQ(ct_temp_name_pid("out.tmp.0123", "out"), 0);
    CHECK_EQ(ct_temp_name_pid("out.tmp.99999999999", "out"), 0); // not a PID
    CHECK_EQ(ct_temp_name_pid("out.tmp.", "out"), 0);
    CHECK_EQ(ct_temp_name_pid(".tmp.12", NULL), 0); // no base
    CHECK_EQ(ct_temp_name_pid("notes.tmp", NULL), 0);
}

TEST(pid_is_dead_only_for_gone_processes) {
    CHECK(!ct_pid_is_dead((long)getpid()));
    CHECK(!ct_pid_is_dead(1)); // init: alive (or another user's: counted as alive)
    CHECK(!ct_pid_is_dead(0));
    CHECK(!ct_pid_is_dead(-5));
    CHECK(ct_pid_is_dead(dead_pid()));
}

TEST(remove_stale_temps_removes_only_dead_owners_of_that_output) {
    char d[4096], name[256], sub[4500];
    fresh_dir(d, sizeof d, "stale");
    long dead = dead_pid(), me = (long)getpid();
    snprintf(name, sizeof name, "out.tmp-%ld-abcdef", dead); // a killed convert's folder, with content
    snprintf(sub, sizeof sub, "%s/%s", d, name);
    mkdir(sub, 0777);
    touch(sub, "model.safetensors");
    snprintf(sub, sizeof sub, "%s/%s/nested", d, name);
    mkdir(sub, 0777);
    touch(sub, "file");
    snprintf(name, sizeof name, "out.tmp.%ld", dead); // a killed atomic write
    touch(d, name);
    snprintf(name, sizeof name, "out.tmp-%ld-ghijkl", me); // a live writer's folder
    snprintf(sub, sizeof sub, "%s/%s", d, name);
    mkdir(sub, 0777);
    snprintf(name, sizeof name, "other.tmp.%ld", dead); // another output's
    touch(d, name);
    touch(d, "out.tmp-abcdef"); // old form without a PID
    touch(d, "out");

    CHECK_EQ(ct_remove_stale_temps(d, "out"), 2);
    snprintf(name, sizeof name, "out.tmp-%ld-abcdef", dead);
    CHECK(!exists_in(d, name));
    snprintf(name, sizeof name, "out.tmp.%ld", dead);
    CHECK(!exists_in(d, name));
    snprintf(name, sizeof name, "out.tmp-%ld-ghijkl", me);
    CHECK(exists_in(d, name));
    snprintf(name, sizeof name, "other.tmp.%ld", dead);
    CHECK(exists_in(d, name));
    CHECK(exists_in(d, "out.tmp-abcdef"));
    CHECK(exists_in(d, "out"));
    // Any base: the other output's temp goes too, the live one stays.
    CHECK_EQ(ct_remove_stale_temps(d, NULL), 1);
    snprintf(name, sizeof name, "out.tmp-%ld-ghijkl", me);
    CHECK(exists_in(d, name));
    CHECK_EQ(ct_remove_stale_temps(d, NULL), 0);
}

TEST(temp_dir_create_names_the_owner_and_cleans_stale_siblings) {
    char d[4096], out[4200], tmp[4400], stale[4400];
    ct_error err;
    fresh_dir(d, sizeof d, "tmpdir");
    snprintf(out, sizeof out, "%s/deep/model", d);
    ct_mkdir_p(out, &err); // the parent must exist for the stale one
    rmdir(out);
    snprintf(stale, sizeof stale, "%s.tmp-%ld-zzzzzz", out, dead_pid());
    mkdir(stale, 0700);
    CHECK_OK(ct_temp_dir_create(out, tmp, sizeof tmp, &err), &err);
    CHECK(ct_is_dir(tmp));
    CHECK(!ct_path_exists(stale));
    CHECK_EQ(ct_temp_name_pid(strrchr(tmp, '/') + 1, "model"), (long)getpid());
    struct stat sb;
    CHECK(stat(tmp, &sb) == 0);
    mode_t mask = umask(0);
    umask(mask);
    CHECK_EQ(sb.st_mode & 0777, 0777 & ~mask); // as mkdir would make it, not mkdtemp's 0700
    // A second temp folder of a live process (ours) is not touched.
    char tmp2[4400];
    CHECK_OK(ct_temp_dir_create(out, tmp2, sizeof tmp2, &err), &err);
    CHECK(ct_is_dir(tmp));
    CHECK(strcmp(tmp, tmp2) != 0);
    CHECK_OK(ct_remove_tree(tmp, &err), &err);
    CHECK_OK(ct_remove_tree(tmp2, &err), &err);
    CHECK(!ct_path_exists(tmp));
}

TEST(atomic_begin_removes_a_killed_writers_temp) {
    char d[4096], path[4200], stale[4400];
    ct_error err;
    fresh_dir(d, sizeof d, "atomic-stale");
    snprintf(path, sizeof path, "%s/adapters.safetensors", d);
    snprintf(stale, sizeof stale, "%s.tmp.%ld", path, dead_pid());
    touch(d, strrchr(stale, '/') + 1);
    CHECK(ct_path_exists(stale));
    CHECK_OK(ct_write_file_atomic(path, "new", 3, &err), &err);
    CHECK(!ct_path_exists(stale));
    CHECK(ct_path_exists(path));
}

TEST(remove_tree_does_not_follow_symlinks) {
    char d[4096], target[4200], link[4200], victim[4200];
    ct_error err;
    fresh_dir(d, sizeof d, "rmtree");
    snprintf(target, sizeof target, "%s/keep", d);
    mkdir(target, 0777);
    touch(target, "precious");
    snprintf(victim, sizeof victim, "%s/victim", d);
    mkdir(victim, 0777);
    snprintf(link, sizeof link, "%s/victim/link", d);
    CHECK(symlink(target, link) == 0);
    CHECK_OK(ct_remove_tree(victim, &err), &err);
    CHECK(!ct_path_exists(victim));
    CHECK(exists_in(target, "precious"));
    CHECK_OK(ct_remove_tree(victim, &err), &err); // missing: not an error
}
