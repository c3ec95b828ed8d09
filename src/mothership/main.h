/* `stratus mothership`: the control plane process (docs/api.md). */
#ifndef STRATUS_MOTHERSHIP_MAIN_H
#define STRATUS_MOTHERSHIP_MAIN_H

int mothership_main(int argc, char **argv);

#endif
