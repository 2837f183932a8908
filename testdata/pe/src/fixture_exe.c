/* Minimal EXE body for nextboot PE version-resource fixtures.
 * Linked with -nostdlib -nostartfiles -lkernel32: no CRT; the only
 * import is kernel32!ExitProcess. Entry is mainCRTStartup (ld default
 * for console images). */
#include <windows.h>

void __cdecl mainCRTStartup(void)
{
    ExitProcess(0);
}
