/* `stratus broker`: runs a Kafka-protocol broker until SIGTERM/SIGINT. */
#ifndef STRATUS_BROKER_MAIN_H
#define STRATUS_BROKER_MAIN_H

int broker_main(int argc, char **argv);

#endif
