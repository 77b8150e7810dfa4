/* make_segment: puts the bytes of a cuda-link segment under a named file
 * mapping, the way a producer on Windows does (paging-file backed, no
 * Local\ or Global\ prefix: PROTOCOL.md), runs a command while it holds
 * the mapping, and exits with the command's status. Windows only; run under
 * Wine by .ci/windows-check.sh:
 *
 *   make_segment CASE NAME COMMAND [ARGS...]
 *
 * CASE is one of the hostile segments that tests/gst/test_cudalinksrc.c
 * feeds cudalinksrc on Linux, built the same way (a valid 3-slot 64x32
 * uint8 x4 header, then one field spoiled):
 *   valid, garbage, wrong-magic, num-slots-0, num-slots-11, truncated,
 *   size-overflow, data-size, bad-dtype, stale
 * or @FILE for the bytes of FILE. The mapping is as long as the bytes; a
 * view of it is page-rounded (4096), as every Windows mapping is, so
 * "truncated" (100 bytes) reads as 100 bytes followed by zeros.
 *
 * The command inherits stdout and stderr. A mapping lives while any handle
 * is open, so this program's handle keeps the segment there for the whole
 * run; it checks afterwards that the command did not write into it
 * (consumers only read). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "cudalink.h"

#define MAX_BYTES 4096

static void
put_u32(uint8_t *p, uint32_t v)
{
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = (v >> 24) & 0xff;
}

/* test_cudalinksrc.c's valid_header(): 3 slots, 64x32 uint8 x4, handles
 * filled with a non-zero pattern (never opened: there is no driver). */
static size_t
valid_header(uint8_t *buf, size_t len, cudalink_layout *layout)
{
  cudalink_header h;
  memset(&h, 0, sizeof h);
  h.version = 7;
  h.num_slots = 3;
  memset(h.mem_handle, 0xa5, sizeof h.mem_handle);
  memset(h.event_handle, 0x5a, sizeof h.event_handle);
  h.format.width = 64;
  h.format.height = 32;
  h.format.num_comps = 4;
  h.format.dtype = CUDALINK_DTYPE_UINT8;
  h.timestamp = 1.0;
  *layout = cudalink_layout_for(3);
  if (cudalink_header_write(&h, buf, len) != CUDALINK_OK) {
    fprintf(stderr, "make_segment: cannot encode the valid header\n");
    exit(2);
  }
  return layout->size;
}

/* The bytes of CASE into buf; their length, 0 for an unknown case. */
static size_t
build_case(const char *name, uint8_t *buf, size_t cap)
{
  cudalink_layout l;
  size_t len;

  memset(buf, 0, cap);
  if (name[0] == '@') {
    FILE *f = fopen(name + 1, "rb");
    if (!f) {
      fprintf(stderr, "make_segment: cannot open %s\n", name + 1);
      exit(2);
    }
    len = fread(buf, 1, cap, f);
    fclose(f);
    return len;
  }
  if (strcmp(name, "garbage") == 0) {
    /* any bytes but the magic (the Linux test uses GLib's random numbers) */
    uint32_t x = 0xc1bd;
    for (size_t i = 0; i < 433; i++) {
      x = x * 1103515245u + 12345u;
      buf[i] = (uint8_t)(x >> 16);
    }
    buf[0] = 'x';
    return 433;
  }
  len = valid_header(buf, cap, &l);
  if (strcmp(name, "valid") == 0)
    return len;
  if (strcmp(name, "wrong-magic") == 0) {
    put_u32(buf + l.magic, 0x44504943); /* "CIPD" byte-swapped */
    return len;
  }
  if (strcmp(name, "num-slots-0") == 0) {
    put_u32(buf + l.num_slots, 0);
    return len;
  }
  if (strcmp(name, "num-slots-11") == 0) {
    /* long enough for 11 slots, so that only the count is wrong */
    put_u32(buf + l.num_slots, 11);
    return 2048;
  }
  if (strcmp(name, "truncated") == 0)
    return 100; /* magic and num_slots intact, the rest cut off */
  if (strcmp(name, "size-overflow") == 0) {
    /* float32 x4 32768x32767: 2^34 - 2^19 bytes; data_size holds what a
     * 32-bit multiplication would wrap to */
    uint64_t need = (uint64_t)32768 * 32767 * 4 * 4;
    buf[l.format_kind] = CUDALINK_KIND_FLOAT;
    buf[l.bits_per_comp] = 32;
    put_u32(buf + l.width, 32768);
    put_u32(buf + l.height, 32767);
    put_u32(buf + l.num_comps, 4);
    put_u32(buf + l.data_size, (uint32_t)need);
    return len;
  }
  if (strcmp(name, "data-size") == 0) {
    put_u32(buf + l.data_size, 64 * 32 * 4 + 1);
    return len;
  }
  if (strcmp(name, "bad-dtype") == 0) {
    buf[l.bits_per_comp] = 64;
    return len;
  }
  if (strcmp(name, "stale") == 0) {
    buf[l.shutdown_flag] = 1;
    return len;
  }
  return 0;
}

/* argv[first..] as one command line, each argument quoted when it needs it
 * (the rules CommandLineToArgvW undoes). */
static char *
command_line(int argc, char **argv, int first)
{
  size_t cap = 16;
  for (int i = first; i < argc; i++)
    cap += 2 * strlen(argv[i]) + 3;
  char *cmd = malloc(cap), *o = cmd;
  if (!cmd)
    exit(2);
  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    int quote = *a == '\0' || strpbrk(a, " \t\"") != NULL;
    if (i > first)
      *o++ = ' ';
    if (quote)
      *o++ = '"';
    for (; *a; a++) {
      size_t slashes = 0;
      while (a[slashes] == '\\')
        slashes++;
      if (slashes && (a[slashes] == '"' || (quote && a[slashes] == '\0'))) {
        /* backslashes before a quote (or the closing one) are doubled */
        for (size_t k = 0; k < 2 * slashes; k++)
          *o++ = '\\';
        a += slashes - 1;
        continue;
      }
      if (*a == '"')
        *o++ = '\\';
      *o++ = *a;
    }
    if (quote)
      *o++ = '"';
  }
  *o = '\0';
  return cmd;
}

int
main(int argc, char **argv)
{
  static uint8_t bytes[MAX_BYTES], after[MAX_BYTES];
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  DWORD code = 1;

  if (argc < 4) {
    fprintf(stderr, "usage: make_segment CASE|@FILE NAME COMMAND [ARGS...]\n");
    return 2;
  }
  size_t len = build_case(argv[1], bytes, sizeof bytes);
  if (len == 0) {
    fprintf(stderr, "make_segment: unknown case '%s'\n", argv[1]);
    return 2;
  }
  HANDLE map = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, (DWORD)len,
                                  argv[2]);
  if (!map || GetLastError() == ERROR_ALREADY_EXISTS) {
    fprintf(stderr, "make_segment: CreateFileMapping(%s) failed or exists (error %lu)\n", argv[2],
            (unsigned long)GetLastError());
    return 2;
  }
  uint8_t *view = MapViewOfFile(map, FILE_MAP_ALL_ACCESS, 0, 0, 0);
  MEMORY_BASIC_INFORMATION info;
  if (!view || !VirtualQuery(view, &info, sizeof info)) {
    fprintf(stderr, "make_segment: cannot map %s (error %lu)\n", argv[2],
            (unsigned long)GetLastError());
    return 2;
  }
  memcpy(view, bytes, len);
  printf("make_segment: '%s' (%s): %lu bytes in a %lu-byte mapping\n", argv[2], argv[1],
         (unsigned long)len, (unsigned long)info.RegionSize);
  fflush(stdout);

  char *cmd = command_line(argc, argv, 3);
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  if (!CreateProcessA(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)) {
    fprintf(stderr, "make_segment: cannot run %s (error %lu)\n", cmd,
            (unsigned long)GetLastError());
    return 2;
  }
  WaitForSingleObject(pi.hProcess, INFINITE);
  GetExitCodeProcess(pi.hProcess, &code);
  CloseHandle(pi.hProcess);
  CloseHandle(pi.hThread);
  free(cmd);

  size_t view_len = info.RegionSize < sizeof after ? info.RegionSize : sizeof after;
  memcpy(after, view, view_len);
  if (memcmp(after, bytes, len) != 0) {
    fprintf(stderr, "make_segment: the command wrote into segment '%s'\n", argv[2]);
    code = 3;
  }
  UnmapViewOfFile(view);
  CloseHandle(map);
  return (int)code;
}
