#!/usr/bin/env python3
"""Reads one redis-cached entry of a `codec = "json"` function, as FORMAT.md says.

Usage: read_value.py TYPE_NAME VERSION [TAG_VERSION ...] < entry

TYPE_NAME is the Rust name of the cached value type (`std::any::type_name`), VERSION the
function's `version`, and each TAG_VERSION the content of one of its tag keys, in the
order of its `tags` (empty for a missing key). The entry's bytes come on stdin.

Prints the value as JSON, `not found` for a negative entry, or `miss: <why>`. Standard
library only; it never talks to Redis, let alone writes to it.
"""

import json
import struct
import sys

FORMAT = 0xC2
KIND_VALUE = 1
KIND_NEGATIVE = 2
CODEC_JSON = 3
TAGGED = 0x10
TIMED = 0x20
KNOWN_FLAGS = 0x0F | TAGGED | TIMED


NOT_FOUND = object()


class Miss(Exception):
    """The entry is not a current value of this function: read the source of truth."""


def fingerprint(type_name):
    """FNV-1a (64-bit) of the type name's UTF-8 bytes, folded to 32 bits."""
    h = 0xCBF29CE484222325
    for byte in type_name.encode("utf-8"):
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return (h ^ (h >> 32)) & 0xFFFFFFFF


class Cursor:
    """Reads the header front to back; running out of bytes is a miss."""

    def __init__(self, data):
        self.data = data
        self.at = 0

    def take(self, n):
        if self.at + n > len(self.data):
            raise Miss("the entry ends inside its header")
        part = self.data[self.at : self.at + n]
        self.at += n
        return part

    def varint(self):
        """Unsigned LEB128 of a u32: at most 5 bytes."""
        value = 0
        for i in range(5):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return value
        raise Miss("a varint longer than 5 bytes")

    def rest(self):
        return self.data[self.at :]


def tag_version(text):
    """A tag key's content: a decimal u64."""
    if not text.isdigit() or not text.isascii() or int(text) >= 1 << 64:
        raise Miss("a tag has no version")
    return int(text)


def read(entry, type_name, version, tags):
    """The value, or NOT_FOUND for a negative entry; raises Miss for anything else."""
    cursor = Cursor(entry)
    if cursor.take(1)[0] != FORMAT:
        raise Miss("another format")
    flags = cursor.take(1)[0]
    kind, codec = flags & 0x03, (flags >> 2) & 0x03
    if flags & ~KNOWN_FLAGS or kind not in (KIND_VALUE, KIND_NEGATIVE):
        raise Miss("unknown flags")
    if codec != CODEC_JSON:
        raise Miss("another codec")
    if cursor.varint() != version:
        raise Miss("another version")
    (stored,) = struct.unpack("<I", cursor.take(4))
    if stored != fingerprint(type_name):
        raise Miss("another value type")
    stored_tags = []
    if flags & TAGGED:
        count = cursor.varint()
        stored_tags = [struct.unpack("<Q", cursor.take(8))[0] for _ in range(count)]
    if stored_tags != [tag_version(tag) for tag in tags]:
        raise Miss("loaded under other tag versions")
    if flags & TIMED:
        cursor.varint()  # the load time: only the crate's early refresh uses it
    payload = cursor.rest()
    if kind == KIND_NEGATIVE:
        if payload:
            raise Miss("bytes after a negative entry")
        return NOT_FOUND
    # The end marker proves the value whole; whitespace before it was appended.
    if payload[-1:] != b"\n":
        raise Miss("no end marker: the value is cut short")
    text = payload[:-1]
    if text[-1:] in (b" ", b"\t", b"\n", b"\r"):
        raise Miss("bytes after the value")
    try:
        # Exactly one JSON value: json.loads rejects anything after it.
        return json.loads(text.decode("utf-8"))
    except ValueError as e:
        raise Miss("the payload does not decode: %s" % e)


def main(args):
    if len(args) < 2 or not args[1].isdigit():
        sys.stderr.write(__doc__)
        return 2
    type_name, version, tags = args[0], int(args[1]), args[2:]
    entry = sys.stdin.buffer.read()
    try:
        value = read(entry, type_name, version, tags)
    except Miss as why:
        print("miss: %s" % why)
        return 0
    print("not found" if value is NOT_FOUND else json.dumps(value))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
