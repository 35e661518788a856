/* ctl — the subcommands of tallyctl; each takes its own argv (argv[0] is the
 * subcommand's name) and returns the process exit status. */
#ifndef TALLY_CTL_CTL_H
#define TALLY_CTL_CTL_H

int ctl_migrate(int argc, char **argv);

#endif
