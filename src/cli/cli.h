/* Command-line client commands of the `stratus` binary (they talk to servers; they are
 * not servers). */
#ifndef STRATUS_CLI_CLI_H
#define STRATUS_CLI_CLI_H

/* `stratus groups`: consumer groups, members and lag of a Kafka-protocol broker. */
int groups_main(int argc, char **argv);

#endif
