// hub.c: the Hugging Face cache (read offline, filled online with libcurl),
// laid out exactly as huggingface_hub does so Python tools share it.
#include "ctune/hub.h"

#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctune/fs.h"
#include "ctune/json.h"
#include "ctune/log.h"

const char *const CT_HUB_MODEL_PATTERNS[] = {"*.json", "model*.safetensors", "*.py", "tokenizer.model", "*.tiktoken",
                                             "tiktoken.model", "*.txt", "*.jsonl", "*.jinja", NULL};
const char *const CT_HUB_DATASET_PATTERNS[] = {"*.jsonl", "*.json", NULL};

// ---------------------------------------------------------------------------
// Options from the environment.

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool env_true(const char *name) {
    const char *v = env(name);
    return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"));
}

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    size_t lead = strspn(s, " \t\r\n");
    memmove(s, s + lead, n - lead + 1);
}

ct_status ct_hub_options_from_env(ct_hub_options *o, ct_error *err) {
    memset(o, 0, sizeof *o);
    const char *home = env("HOME") ? env("HOME") : "/root";
    char hf_home[4096];
    if (env("HF_HOME"))
        snprintf(hf_home, sizeof hf_home, "%s", env("HF_HOME"));
    else if (env("XDG_CACHE_HOME"))
        snprintf(hf_home, sizeof hf_home, "%s/huggingface", env("XDG_CACHE_HOME"));
    else
        snprintf(hf_home, sizeof hf_home, "%s/.cache/huggingface", home);
    const char *cache = env("HF_HUB_CACHE") ? env("HF_HUB_CACHE") : env("HUGGINGFACE_HUB_CACHE");
    int w = cache ? snprintf(o->cache, sizeof o->cache, "%s", cache)
                  : snprintf(o->cache, sizeof o->cache, "%s/hub", hf_home);
    if (w < 0 || (size_t)w >= sizeof o->cache)
        return ct_fail(err, CT_ERR_INVALID, "Hugging Face cache path too long");
    snprintf(o->endpoint, sizeof o->endpoint, "%s", env("HF_ENDPOINT") ? env("HF_ENDPOINT") : "https://huggingface.co");
    size_t n = strlen(o->endpoint);
    while (n && o->endpoint[n - 1] == '/')
        o->endpoint[--n] = 0;
    const char *token = env("HF_TOKEN") ? env("HF_TOKEN") : env("HUGGING_FACE_HUB_TOKEN");
    if (token) {
        snprintf(o->token, sizeof o->token, "%s", token);
    } else {
        char path[4200];
        snprintf(path, sizeof path, "%s", env("HF_TOKEN_PATH") ? env("HF_TOKEN_PATH") : "");
        if (!path[0])
            snprintf(path, sizeof path, "%s/token", hf_home);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(o->token, sizeof o->token, f))
                o->token[0] = 0;
            fclose(f);
        }
    }
    trim(o->token);
    o->offline = env_true("HF_HUB_OFFLINE");
    o->timeout_s = env("HF_HUB_DOWNLOAD_TIMEOUT") ? atol(env("HF_HUB_DOWNLOAD_TIMEOUT")) : 60;
    if (o->timeout_s <= 0)
        o->timeout_s = 60;
    return CT_OK;
}

bool ct_hub_is_repo_id(const char *s) {
    size_t n = strlen(s), slashes = 0;
    if (n == 0 || n > 200 || s[0] == '/' || s[0] == '.' || s[n - 1] == '/' || strstr(s, "..") || strstr(s, "--"))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/') {
            if (++slashes > 1 || s[i + 1] == '.')
                return false;
        } else if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i])) {
            return false;
        }
    }
    return true;
}

// ---------------------------------------------------------------------------
// Listing files.

void ct_hub_free_list(char **files, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
}

typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

static ct_status strlist_push(strlist *l, const char *s, ct_error *err) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **nv = realloc(l->v, cap * sizeof *nv);
        if (!nv)
            return ct_fail(err, CT_ERR_NOMEM, "out of memory");
        l->v = nv;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s)))
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    l->n++;
    return CT_OK;
}

static ct_status walk(const char *root, const char *rel, int depth, strlist *out, ct_error *err) {
    char dir[4096];
    CT_TRY(ct_path_join(dir, sizeof dir, root, rel, err));
    DIR *d = opendir(dir);
    if (!d)
        return ct_fail(err, CT_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    ct_status st = CT_OK;
    for (struct dirent *e; st == CT_OK && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096], full[4096];
        int w = snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        if (w < 0 || (size_t)w >= sizeof sub || ct_path_join(full, sizeof full, root, sub, err) != CT_OK) {
            st = ct_fail(err, CT_ERR_INVALID, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        struct stat sb;
        if (stat(full, &sb) != 0)
            continue; // a dangling link: not a usable file
        if (S_ISDIR(sb.st_mode) && depth < 16)
            st = walk(root, sub, depth + 1, out, err);
        else if (S_ISREG(sb.st_mode))
            st = strlist_push(out, sub, err);
    }
    closedir(d);
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

ct_status ct_hub_list_dir(const char *dir, char ***files, size_t *n, ct_error *err) {
    strlist l = {0};
    ct_status st = walk(dir, "", 0, &l, err);
    if (st != CT_OK) {
        ct_hub_free_list(l.v, l.n);
        return st;
    }
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, cmp_str);
    *files = l.v;
    *n = l.n;
    return CT_OK;
}

void ct_hub_snapshot_free(ct_hub_snapshot *s) {
    ct_hub_free_list(s->files, s->n_files);
    s->files = NULL;
    s->n_files = 0;
}

// ---------------------------------------------------------------------------
// The cache layout.

typedef struct repo {
    const ct_hub_options *o;
    ct_hub_kind kind;
    const char *id;
    char dir[3900]; // <cache>/models--org--name (short enough for snapshot paths)
} repo;

static const char *kind_word(ct_hub_kind k) { return k == CT_HUB_MODEL ? "model" : "dataset"; }

static ct_status repo_init(repo *r, const ct_hub_options *o, ct_hub_kind kind, const char *id, ct_error *err) {
    r->o = o;
    r->kind = kind;
    r->id = id;
    char folder[512];
    int w = snprintf(folder, sizeof folder, "%ss--", kind_word(kind));
    for (const char *p = id; *p && (size_t)w + 3 < sizeof folder; p++) {
        if (*p == '/') {
            folder[w++] = '-';
            folder[w++] = '-';
        } else {
            folder[w++] = *p;
        }
    }
    folder[w] = 0;
    return ct_path_join(r->dir, sizeof r->dir, o->cache, folder, err);
}

static bool is_commit_sha(const char *s) {
    return strlen(s) == 40 && strspn(s, "0123456789abcdef") == 40;
}

static ct_status read_ref(const repo *r, const char *revision, char *sha, size_t n, ct_error *err) {
    if (is_commit_sha(revision)) {
        snprintf(sha, n, "%s", revision);
        return CT_OK;
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/refs/%s", r->dir, revision);
    char *text;
    if (ct_read_file(path, &text, NULL, err) != CT_OK)
        return ct_fail(err, CT_ERR_IO,
                       "Hugging Face %s '%s' is not in the cache (%s)%s", kind_word(r->kind), r->id, r->dir,
                       r->o->offline ? " and HF_HUB_OFFLINE=1 forbids downloading it" : "");
    trim(text);
    snprintf(sha, n, "%s", text);
    free(text);
    if (!is_commit_sha(sha))
        return ct_fail(err, CT_ERR_FORMAT, "%s: not a commit sha", path);
    return CT_OK;
}

static ct_status resolve_offline(const repo *r, const char *revision, ct_hub_snapshot *out, ct_error *err) {
    CT_TRY(read_ref(r, revision, out->sha, sizeof out->sha, err));
    int w = snprintf(out->dir, sizeof out->dir, "%s/snapshots/%s", r->dir, out->sha);
    if (w < 0 || (size_t)w >= sizeof out->dir)
        return ct_fail(err, CT_ERR_INVALID, "%s: path too long", r->dir);
    if (!ct_is_dir(out->dir))
        return ct_fail(err, CT_ERR_IO, "Hugging Face %s '%s': snapshot %s is missing from the cache", kind_word(r->kind),
                       r->id, out->dir);
    return ct_hub_list_dir(out->dir, &out->files, &out->n_files, err);
}

// ---------------------------------------------------------------------------
// HTTP.

typedef struct http_body {
    FILE *f;        // write here, or
    char *mem;      // collect here
    size_t n, cap;
    bool oom;
} http_body;

typedef struct http_headers {
    char etag[256];
    char linked_etag[256];
} http_headers;

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
    http_body *b = user;
    size_t n = size * nmemb;
    if (b->f)
        return fwrite(data, 1, n, b->f);
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *nm = realloc(b->mem, cap);
        if (!nm) {
            b->oom = true;
            return 0;
        }
        b->mem = nm;
        b->cap = cap;
    }
    memcpy(b->mem + b->n, data, n);
    b->n += n;
    b->mem[b->n] = 0;
    return n;
}

// Keeps ETag / X-Linked-Etag values without quotes or the weak W/ prefix.
static void header_value(const char *line, size_t n, const char *name, char *dst, size_t cap) {
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return;
    const char *v = line + k + 1;
    const char *end = line + n;
    while (v < end && isspace((unsigned char)*v))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    if (end - v >= 2 && v[0] == 'W' && v[1] == '/')
        v += 2;
    if (v < end && *v == '"')
        v++;
    if (end > v && end[-1] == '"')
        end--;
    size_t len = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(dst, v, len);
    dst[len] = 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *user) {
    http_headers *h = user;
    size_t n = size * nmemb;
    header_value(data, n, "ETag", h->etag, sizeof h->etag);
    header_value(data, n, "X-Linked-Etag", h->linked_etag, sizeof h->linked_etag);
    return n;
}

// GET url into body; *code is the final HTTP status (0 when no connection).
static ct_status http_get(const ct_hub_options *o, const char *url, http_body *body, http_headers *hdr, long *code,
                          ct_error *err) {
    CURL *c = curl_easy_init();
    if (!c)
        return ct_fail(err, CT_ERR_NOMEM, "cannot start libcurl");
    struct curl_slist *headers = NULL;
    char auth[1100];
    if (o->token[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->token);
        headers = curl_slist_append(headers, auth);
    }
    headers = curl_slist_append(headers, "User-Agent: ctune");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L); // no token to other hosts (the CDN)
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o->timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, o->timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    if (hdr) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, hdr);
    }
    CURLcode rc = curl_easy_perform(c);
    *code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (body->oom)
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", url);
    if (rc != CURLE_OK) {
        *code = 0;
        return ct_fail(err, CT_ERR_IO, "%s: %s", url, curl_easy_strerror(rc));
    }
    return CT_OK;
}

static ct_status http_status_error(const repo *r, const char *url, long code, ct_error *err) {
    if (code == 401 || code == 403 || code == 404)
        return ct_fail(err, CT_ERR_IO,
                       "Hugging Face %s '%s': %s answered HTTP %ld (no such repository, or it is private or gated: "
                       "set HF_TOKEN)",
                       kind_word(r->kind), r->id, url, code);
    return ct_fail(err, CT_ERR_IO, "Hugging Face %s '%s': %s answered HTTP %ld", kind_word(r->kind), r->id, url, code);
}

// Percent-encodes everything but unreserved characters and '/'.
static void url_escape(char *out, size_t n, const char *s) {
    size_t k = 0;
    for (; *s && k + 4 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || strchr("-._~/", c))
            out[k++] = (char)c;
        else
            k += (size_t)snprintf(out + k, n - k, "%%%02X", c);
    }
    out[k] = 0;
}

// ---------------------------------------------------------------------------
// Online resolution.

static bool matches(const char *file, const char *const *patterns) {
    if (!patterns)
        return true;
    for (; *patterns; patterns++)
        if (fnmatch(*patterns, file, 0) == 0)
            return true;
    return false;
}

static ct_status fetch_listing(const repo *r, const char *revision, char *sha, size_t sha_n, strlist *files,
                               long *code, ct_error *err) {
    char url[4096], esc_rev[512];
    url_escape(esc_rev, sizeof esc_rev, revision);
    snprintf(url, sizeof url, "%s/api/%ss/%s/revision/%s", r->o->endpoint, kind_word(r->kind), r->id, esc_rev);
    http_body body = {0};
    ct_status st = http_get(r->o, url, &body, NULL, code, err);
    if (st == CT_OK && *code != 200)
        st = http_status_error(r, url, *code, err);
    cJSON *j = NULL;
    if (st == CT_OK)
        st = ct_json_parse(body.mem ? body.mem : "", body.n, url, &j, err);
    free(body.mem);
    const char *s = NULL;
    if (st == CT_OK)
        st = ct_json_need_string(j, "sha", &s, err);
    if (st == CT_OK && !is_commit_sha(s))
        st = ct_fail(err, CT_ERR_FORMAT, "%s: \"sha\" is not a commit sha", url);
    if (st == CT_OK)
        snprintf(sha, sha_n, "%s", s);
    const cJSON *sib = j ? cJSON_GetObjectItemCaseSensitive(j, "siblings") : NULL;
    for (const cJSON *e = cJSON_IsArray(sib) ? sib->child : NULL; st == CT_OK && e; e = e->next) {
        const char *f = NULL;
        st = ct_json_need_string(e, "rfilename", &f, err);
        if (st == CT_OK && (f[0] == '/' || strstr(f, "..")))
            st = ct_fail(err, CT_ERR_FORMAT, "%s: refusing file name '%s'", url, f);
        if (st == CT_OK)
            st = strlist_push(files, f, err);
    }
    if (st != CT_OK && j)
        ct_error_context(err, "Hugging Face %s '%s'", kind_word(r->kind), r->id);
    cJSON_Delete(j);
    return st;
}

// A stable blob name when the server sends no ETag (FNV-1a of sha/file).
static void fallback_etag(char *out, size_t n, const char *sha, const char *file) {
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = sha; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    for (const char *p = file; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    snprintf(out, n, "ctune-%016llx", (unsigned long long)h);
}

static ct_status parent_dirs(const char *path, ct_error *err) {
    char dir[4400];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return CT_OK;
    *slash = 0;
    return ct_mkdir_p(dir, err);
}

// snapshots/<sha>/<file> -> ../../blobs/<etag> (one more ../ per subfolder), atomically.
static ct_status link_snapshot(const repo *r, const char *sha, const char *file, const char *etag, ct_error *err) {
    char link[4400], target[4400], tmp[4500];
    snprintf(link, sizeof link, "%s/snapshots/%s/%s", r->dir, sha, file);
    CT_TRY(parent_dirs(link, err));
    size_t k = 0;
    for (int i = 0; i < 2; i++)
        k += (size_t)snprintf(target + k, sizeof target - k, "../");
    for (const char *p = file; *p; p++)
        if (*p == '/')
            k += (size_t)snprintf(target + k, sizeof target - k, "../");
    snprintf(target + k, sizeof target - k, "blobs/%s", etag);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", link, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
        int e = errno;
        unlink(tmp);
        return ct_fail(err, CT_ERR_IO, "%s: cannot link into the cache: %s", link, strerror(e));
    }
    return CT_OK;
}

static ct_status download_file(const repo *r, const char *sha, const char *file, ct_error *err) {
    char url[8192], esc[4096];
    url_escape(esc, sizeof esc, file);
    snprintf(url, sizeof url, "%s/%s%s/resolve/%s/%s", r->o->endpoint, r->kind == CT_HUB_DATASET ? "datasets/" : "",
             r->id, sha, esc);
    char blobs[4400], tmp[4500];
    snprintf(blobs, sizeof blobs, "%s/blobs", r->dir);
    CT_TRY(ct_mkdir_p(blobs, err));
    // A download killed mid-way leaves this file; the next one removes it (owner PID dead).
    ct_remove_stale_temps(blobs, "ctune.incomplete");
    snprintf(tmp, sizeof tmp, "%s/ctune.incomplete.tmp.%ld", blobs, (long)getpid());
    http_body body = {0};
    if (!(body.f = fopen(tmp, "wb")))
        return ct_fail(err, CT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    http_headers hdr = {{0}, {0}};
    long code = 0;
    ct_log_info("downloading %s", url);
    ct_status st = http_get(r->o, url, &body, &hdr, &code, err);
    bool bad_write = ferror(body.f) != 0;
    bad_write |= fflush(body.f) != 0 || fsync(fileno(body.f)) != 0;
    bad_write |= fclose(body.f) != 0;
    if (st == CT_OK && code != 200)
        st = http_status_error(r, url, code, err);
    if (st == CT_OK && bad_write)
        st = ct_fail(err, CT_ERR_IO, "%s: write failed (disk full?)", tmp);
    char etag[256];
    if (hdr.linked_etag[0])
        snprintf(etag, sizeof etag, "%s", hdr.linked_etag);
    else if (hdr.etag[0])
        snprintf(etag, sizeof etag, "%s", hdr.etag);
    else
        fallback_etag(etag, sizeof etag, sha, file);
    if (st == CT_OK && (strchr(etag, '/') || etag[0] == '.'))
        st = ct_fail(err, CT_ERR_FORMAT, "%s: unusable ETag '%s'", url, etag);
    char blob[4800];
    snprintf(blob, sizeof blob, "%s/%s", blobs, etag);
    if (st == CT_OK && rename(tmp, blob) != 0)
        st = ct_fail(err, CT_ERR_IO, "%s: cannot move into place: %s", blob, strerror(errno));
    if (st != CT_OK) {
        unlink(tmp);
        return st;
    }
    return link_snapshot(r, sha, file, etag, err);
}

static ct_status write_ref(const repo *r, const char *revision, const char *sha, ct_error *err) {
    if (is_commit_sha(revision))
        return CT_OK;
    char path[4400];
    snprintf(path, sizeof path, "%s/refs/%s", r->dir, revision);
    CT_TRY(parent_dirs(path, err));
    return ct_write_file_atomic(path, sha, strlen(sha), err);
}

static ct_status resolve_online(const repo *r, const char *revision, const char *const *patterns,
                                ct_hub_snapshot *out, ct_error *err) {
    strlist files = {0};
    long code = 0;
    ct_status st = fetch_listing(r, revision, out->sha, sizeof out->sha, &files, &code, err);
    if (st != CT_OK && code == 0 && !files.n) {
        // No connection: huggingface_hub falls back to the cache, and so do we.
        ct_error net = *err;
        ct_hub_free_list(files.v, files.n);
        if (resolve_offline(r, revision, out, err) == CT_OK) {
            ct_log_warn("%s; using the cached copy of '%s'", net.msg, r->id);
            return CT_OK;
        }
        *err = net;
        return st;
    }
    snprintf(out->dir, sizeof out->dir, "%s/snapshots/%s", r->dir, out->sha);
    if (st == CT_OK)
        st = ct_mkdir_p(out->dir, err);
    for (size_t i = 0; st == CT_OK && i < files.n; i++) {
        if (!matches(files.v[i], patterns))
            continue;
        char path[8400];
        snprintf(path, sizeof path, "%s/%s", out->dir, files.v[i]);
        if (!ct_path_exists(path))
            st = download_file(r, out->sha, files.v[i], err);
    }
    if (st == CT_OK)
        st = write_ref(r, revision, out->sha, err);
    if (st != CT_OK) {
        ct_hub_free_list(files.v, files.n);
        return st;
    }
    out->files = files.v;
    out->n_files = files.n;
    return CT_OK;
}

ct_status ct_hub_resolve(const ct_hub_options *o, ct_hub_kind kind, const char *repo_id, const char *revision,
                         const char *const *patterns, ct_hub_snapshot *out, ct_error *err) {
    memset(out, 0, sizeof *out);
    if (!ct_hub_is_repo_id(repo_id))
        return ct_fail(err, CT_ERR_INVALID, "'%s' is not a Hugging Face repository id (org/name)", repo_id);
    repo r;
    CT_TRY(repo_init(&r, o, kind, repo_id, err));
    const char *rev = revision ? revision : "main";
    if (o->offline)
        return resolve_offline(&r, rev, out, err);
    return resolve_online(&r, rev, patterns, out, err);
}

ct_status ct_hub_model_path(const char *model, char *out, size_t n, ct_error *err) {
    if (ct_path_exists(model) || !ct_hub_is_repo_id(model) || model[0] == '.' || strchr(model, '/') == NULL) {
        if (!ct_path_exists(model))
            return ct_fail(err, CT_ERR_IO, "%s: no such file or directory (nor a Hugging Face id like org/name)",
                           model);
        if (strlen(model) >= n)
            return ct_fail(err, CT_ERR_INVALID, "%s: path too long", model);
        strcpy(out, model);
        return CT_OK;
    }
    ct_hub_options opts;
    CT_TRY(ct_hub_options_from_env(&opts, err));
    ct_hub_snapshot snap;
    CT_TRY(ct_hub_resolve(&opts, CT_HUB_MODEL, model, NULL, CT_HUB_MODEL_PATTERNS, &snap, err));
    ct_status st = strlen(snap.dir) < n ? CT_OK : ct_fail(err, CT_ERR_INVALID, "%s: path too long", snap.dir);
    if (st == CT_OK)
        strcpy(out, snap.dir);
    ct_hub_snapshot_free(&snap);
    return st;
}
