/* tally-worker — consumes tenant requests from Kafka and answers them. */
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "tally-worker: not built yet\n");
    return 1;
}
