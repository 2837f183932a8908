#!/usr/bin/env python3
"""Independent oracle for nextboot's PE version-resource reader.

For every path on the command line prints one JSON object per line:
  {"path", "pe": "PE32"|"PE32+", "file_version", "product_version",
   "file_version_string"}
versions are "a.b.c.d" from VS_FIXEDFILEINFO (FileVersionMS/LS,
ProductVersionMS/LS) or null; file_version_string is the "FileVersion"
value of the first StringFileInfo string table, or null.
Files that are not PE (or that pefile cannot parse) give
  {"path": ..., "error": "..."}
and processing continues. Exit status is 0 unless no paths were given.

Requires: pip install pefile
"""
import json
import sys

import pefile


def quad(ms, ls):
    return f"{ms >> 16}.{ms & 0xFFFF}.{ls >> 16}.{ls & 0xFFFF}"


def first_file_version_string(pe):
    # pe.FileInfo: one list per VS_VERSIONINFO resource, each holding
    # StringFileInfo / VarFileInfo objects.
    for fileinfo in getattr(pe, "FileInfo", None) or []:
        for entry in fileinfo:
            if getattr(entry, "Key", b"") != b"StringFileInfo":
                continue
            for table in getattr(entry, "StringTable", []):
                value = table.entries.get(b"FileVersion")
                return None if value is None else value.decode("utf-8", "replace")
    return None


def inspect(path):
    pe = pefile.PE(path, fast_load=True)
    try:
        pe.parse_data_directories(
            directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"]]
        )
        magic = pe.OPTIONAL_HEADER.Magic
        kind = {pefile.OPTIONAL_HEADER_MAGIC_PE: "PE32",
                pefile.OPTIONAL_HEADER_MAGIC_PE_PLUS: "PE32+"}.get(magic, hex(magic))
        fv = pv = None
        fixed = getattr(pe, "VS_FIXEDFILEINFO", None)
        if fixed:
            f = fixed[0]
            fv = quad(f.FileVersionMS, f.FileVersionLS)
            pv = quad(f.ProductVersionMS, f.ProductVersionLS)
        return {
            "path": path,
            "file_version": fv,
            "product_version": pv,
            "file_version_string": first_file_version_string(pe),
            "pe": kind,
        }
    finally:
        pe.close()


def main(argv):
    if not argv:
        print(f"usage: {sys.argv[0]} FILE...", file=sys.stderr)
        return 2
    for path in argv:
        try:
            rec = inspect(path)
        except Exception as e:  # not PE, truncated, unreadable, ...
            rec = {"path": path, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
