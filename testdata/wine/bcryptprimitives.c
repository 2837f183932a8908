/*
 * A stand-in for Windows' bcryptprimitives.dll, for running nextboot.exe under Wine 8 only.
 *
 * Rust's standard library (1.78 and later) imports ProcessPrng from bcryptprimitives.dll for
 * HashMap seeds. Windows 8 and later, Windows PE included, have it; Wine 8.0 (Debian 12) does
 * not, and the exe does not start. tests/windows.rs builds this file with mingw-w64 into a
 * temporary directory beside a copy of the exe. It is never shipped with nextboot.exe.
 *
 * ProcessPrng forwards to RtlGenRandom (advapi32's SystemFunction036), which Wine implements.
 *
 *   x86_64-w64-mingw32-gcc -shared -O2 -s -nostdlib -e DllMain -o bcryptprimitives.dll \
 *       bcryptprimitives.c bcryptprimitives.def -lkernel32 -ladvapi32
 */
#include <windows.h>

/* RtlGenRandom: exported by advapi32 under this name; declared here to avoid ntsecapi.h. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}

/* Windows documents ProcessPrng as always returning TRUE; a failure here is reported as FALSE. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
