/* Minimal DLL body for nextboot PE version-resource fixtures.
 * Linked with -nostdlib -nostartfiles: no CRT, no imports.
 * The linker's default DLL entry symbol is DllMainCRTStartup
 * (x86_64) / _DllMainCRTStartup@12 (i686, stdcall-decorated),
 * so defining it WINAPI here is all the loader needs. */
#include <windows.h>

BOOL WINAPI DllMainCRTStartup(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
    (void)inst; (void)reason; (void)reserved;
    return TRUE;
}

/* One export so the fixture looks like an ordinary DLL (has an export dir). */
__declspec(dllexport) int nextboot_fixture(void)
{
    return 42;
}
