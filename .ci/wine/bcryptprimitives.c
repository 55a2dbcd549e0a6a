/*
 * CI only, never shipped: a stand-in for bcryptprimitives.dll under wine 8.0.
 *
 * Rust >= 1.78 programs for Windows import ProcessPrng from bcryptprimitives.dll
 * (std's random source since Windows 10). Debian 12's wine 8.0 has no such DLL (it
 * came in wine 8.13), so every Rust .exe fails to start there. This DLL exports
 * ProcessPrng and forwards to RtlGenRandom (advapi32!SystemFunction036), which wine
 * 8.0 implements. It is built with mingw by .ci/wine/build-shim.sh and copied next to
 * the test executables; real Windows (10 and later) has the genuine DLL.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
