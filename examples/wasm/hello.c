/* hello: the demo wasm task. Greets, echoes its arguments and one environment variable, and writes
 * /outputs/hello.txt so the demo shows an output flowing back. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *who = getenv("AGORA_WHO");
    printf("hello from wasm, %s!\n", who ? who : "world");
    for (int i = 1; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
    FILE *f = fopen("/outputs/hello.txt", "w");
    if (!f) {
        fprintf(stderr, "cannot write /outputs/hello.txt (was an outputs dir given?)\n");
        return 1;
    }
    fprintf(f, "hello, %s: %d argument(s)\n", who ? who : "world", argc - 1);
    return fclose(f) == 0 ? 0 : 1;
}
