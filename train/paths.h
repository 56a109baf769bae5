#ifndef DACLIP_TRAIN_PATHS_H
#define DACLIP_TRAIN_PATHS_H
/* Small path helpers of the CLI. */

/* mkdir -p: 0, or -1 with errno set. */
int path_mkdir_p(const char *dir);
/* The folder of a file path ("." for a bare name), malloc'd; NULL when out of memory. A dataset CSV's
 * relative image paths are resolved against it (the dataset root, where make-dataset writes the CSV). */
char *path_dir_of(const char *path);
/* `root` when given, else the folder of `file` (malloc'd either way; NULL when out of memory). */
char *path_root_for(const char *root, const char *file);

#endif
