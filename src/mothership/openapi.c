/* The OpenAPI document, embedded from src/mothership/openapi.json at build time with the
 * assembler's .incbin (the compiler runs from the repository root). After editing the
 * JSON, touch this file or `make clean`: the dependency files do not see .incbin. */
#include <stddef.h>

#include "mothership/mothership.h"

__asm__(".section .rodata\n"
        ".global stratus_openapi_start\n"
        ".global stratus_openapi_end\n"
        "stratus_openapi_start:\n"
        ".incbin \"src/mothership/openapi.json\"\n"
        "stratus_openapi_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char stratus_openapi_start[];
extern const char stratus_openapi_end[];

const char *openapi_document(size_t *len)
{
        *len = (size_t)(stratus_openapi_end - stratus_openapi_start);
        return stratus_openapi_start;
}
