/* tallyctl — the operator's and producer's tool. */
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "tallyctl: not built yet\n");
    return 1;
}
