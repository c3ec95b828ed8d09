/* `stratus satellite`: the regional agent that runs the operator (docs/satellite.md). */
#ifndef STRATUS_SATELLITE_MAIN_H
#define STRATUS_SATELLITE_MAIN_H

int satellite_main(int argc, char **argv);

#endif
