/* Plain driver for libFuzzer targets: replays every file of the corpus directories (or
 * files) given on the command line, so CI exercises the targets without clang's fuzzer.
 * Under ASan/UBSan any memory error in a parser aborts the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "%s: cannot open\n", path); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(buf); return 1; }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int files = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) { fprintf(stderr, "%s: missing\n", argv[i]); errors++; continue; }
        if (!S_ISDIR(st.st_mode)) { errors += run_file(argv[i]); files++; continue; }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
            errors += run_file(p);
            files++;
        }
        if (d) closedir(d);
    }
    /* prefix by the target's name so failures are attributable in ctest output */
    printf("replayed %d inputs, %d errors\n", files, errors);
    printf("%d passed, %d failed\n", files - errors, errors);
    return errors || files == 0 ? 1 : 0;
}
