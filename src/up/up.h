/* `stratus up`: the embedded default. Starts and supervises, on this machine, a
 * control-plane `stratus broker`, a `stratus mothership` and one `stratus satellite
 * --region local`, writes the CLI's config file, and stops them in order on Ctrl-C. */
#ifndef STRATUS_UP_UP_H
#define STRATUS_UP_UP_H

/* `stratus up [--data DIR] [--api HOST:PORT]`. Returns the exit status. */
int up_main(int argc, char **argv);

#endif
