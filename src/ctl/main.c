/* tallyctl — the operator's and producer's tool. */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "migrate") == 0)
        return ctl_migrate(argc - 1, argv + 1);
    fprintf(stderr, "usage: tallyctl migrate [--status] [--dir DIR]\n");
    return 2;
}
