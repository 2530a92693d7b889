// hub.h: Hugging Face ids for models and datasets, resolved to a local folder
// in the standard Hugging Face cache, shared with Python's huggingface_hub:
//   <cache>/models--org--name/refs/main            the commit sha of "main"
//   <cache>/models--org--name/snapshots/<sha>/f    relative symlinks into blobs/
//   <cache>/models--org--name/blobs/<etag>         file contents
// (datasets--org--name for datasets). <cache> is $HF_HUB_CACHE, else
// $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
// With HF_HUB_OFFLINE=1 only the cache is read. Online, the file list and
// commit come from <endpoint>/api/{models,datasets}/<id>/revision/<rev>, and
// missing files are downloaded with libcurl from
// <endpoint>/[datasets/]<id>/resolve/<sha>/<file> (HF_TOKEN as a Bearer
// token), each written to blobs/ atomically before its snapshot link.
#ifndef CTUNE_HUB_H
#define CTUNE_HUB_H

#include <stdbool.h>
#include <stddef.h>

#include "ctune/error.h"

typedef enum ct_hub_kind { CT_HUB_MODEL, CT_HUB_DATASET } ct_hub_kind;

typedef struct ct_hub_options {
    char cache[4096];     // the hub cache folder
    char endpoint[1024];  // base URL, default https://huggingface.co ($HF_ENDPOINT)
    char token[1024];     // "" = anonymous ($HF_TOKEN, else $HF_HOME/token)
    bool offline;         // $HF_HUB_OFFLINE is 1/true/yes/on
    long timeout_s;       // per request, default 60 ($HF_HUB_DOWNLOAD_TIMEOUT)
} ct_hub_options;

// Fills opts from the environment as huggingface_hub does.
ct_status ct_hub_options_from_env(ct_hub_options *opts, ct_error *err);

typedef struct ct_hub_snapshot {
    char dir[4096];   // <cache>/<repo folder>/snapshots/<sha>
    char sha[64];     // the commit
    char **files;     // every file of the repository (relative paths): from the hub
    size_t n_files;   // listing when online, from the snapshot folder when offline
} ct_hub_snapshot;

// True if s looks like "name" or "org/name" (no leading '/', '.', no "..").
bool ct_hub_is_repo_id(const char *s);

// Resolves repo_id at revision (NULL = "main") to a snapshot folder holding
// every repository file that matches one of patterns (fnmatch globs on the
// relative path, NULL-terminated; NULL = all files). Errors name the id and
// the cache folder.
ct_status ct_hub_resolve(const ct_hub_options *opts, ct_hub_kind kind, const char *repo_id, const char *revision,
                         const char *const *patterns, ct_hub_snapshot *out, ct_error *err);
void ct_hub_snapshot_free(ct_hub_snapshot *s);

// Every regular file under dir, as sorted paths relative to dir (symlinks
// followed, hidden entries skipped). *files is freed with ct_hub_free_list.
ct_status ct_hub_list_dir(const char *dir, char ***files, size_t *n, ct_error *err);
void ct_hub_free_list(char **files, size_t n);

// --model as users give it: a local folder or .gguf file as is; otherwise a
// Hugging Face id resolved in the cache (downloading when online). Writes the
// local path into out (n bytes). Errors say which of the two was tried.
ct_status ct_hub_model_path(const char *model, char *out, size_t n, ct_error *err);

// The files mlx-lm downloads for a model (mlx_lm.utils.get_model_path).
extern const char *const CT_HUB_MODEL_PATTERNS[];
// The files ctune reads from a dataset repository (JSON Lines and JSON).
extern const char *const CT_HUB_DATASET_PATTERNS[];

#endif
