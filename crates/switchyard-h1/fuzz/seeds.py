#!/usr/bin/env python3
"""Writes the seed corpus (corpus/<target>/) from the byte strings of the framing tests.

Sources: the request vectors of tests/tests/hygiene.rs (the framing table) and of the proxy's
framing tests (framing/{tests,head,server_tests,chunked}.rs), the response heads and chunked
bodies of this crate's unit tests. Rust string literals are read as Rust reads them; a list of
header fields alone is wrapped into a request and into a response. Each seed is named by the
SHA-1 of its bytes, as libFuzzer names corpus entries. Run from this directory:
`python3 seeds.py`.
"""
import hashlib
import os
import re

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.."))
LITERAL = re.compile(rb'b?"((?:[^"\\]|\\.)*)"', re.S)
REQUEST = re.compile(rb"^(\r\n)*[A-Z]+ \S+ HTTP/")


def literals(path):
    """The string literals of a Rust file, unescaped, those with a `{` format hole left out."""
    text = open(os.path.join(ROOT, path), "rb").read()
    for m in LITERAL.finditer(text):
        raw = m.group(1)
        if b"{" in raw:
            continue
        out, i = bytearray(), 0
        while i < len(raw):
            c = raw[i]
            if c != 0x5C:  # backslash
                out.append(c)
                i += 1
                continue
            e = raw[i + 1]
            if e == 0x0A:  # line continuation: skip the newline and the indent after it
                i += 2
                while i < len(raw) and raw[i] in b" \t\n":
                    i += 1
                continue
            if e == ord("x"):
                out.append(int(raw[i + 2 : i + 4], 16))
                i += 4
                continue
            out.append({"r": 13, "n": 10, "t": 9, "0": 0, "\\": 92, '"': 34, "'": 39}[chr(e)])
            i += 2
        yield bytes(out)


def write(target, data):
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def is_fields(s):
    return re.match(rb"^[A-Za-z_-]+:", s) is not None and b"HTTP/" not in s


BODY = b"5\r\nhello\r\n0\r\n\r\n"
GET = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
for path in [
    "tests/tests/hygiene.rs",
    "crates/switchyard-proxy/src/framing/tests.rs",
    "crates/switchyard-proxy/src/framing/head.rs",
    "crates/switchyard-proxy/src/framing/server_tests.rs",
    "crates/switchyard-h1/src/response.rs",
    "crates/switchyard-h1/src/request.rs",
]:
    for s in literals(path):
        if s.startswith(b"HTTP/"):
            write("response_head", s if b"\r\n\r\n" in s else s + b"\r\n")
            write("response_head", s + BODY if s.endswith(b"\r\n\r\n") else s + b"\r\n\r\n" + BODY)
        elif REQUEST.match(s):
            write("request_head", s if b"\r\n\r\n" in s else s + b"\r\n\r\n")
            write("request_head", (s if s.endswith(b"\r\n\r\n") else s + b"\r\n\r\n") + BODY + GET)
        elif is_fields(s):
            write("request_head", b"POST / HTTP/1.1\r\nHost: x\r\n" + s + b"\r\n\r\n" + BODY + GET)
            write("response_head", b"HTTP/1.1 200 OK\r\n" + s + b"\r\n\r\n" + BODY)
for path in [
    "crates/switchyard-h1/src/chunked.rs",
    "crates/switchyard-proxy/src/framing/chunked.rs",
]:
    for s in literals(path):
        if re.match(rb"^[0-9a-fA-FxzZ\r\n-]", s) and len(s) > 1:
            for split in (0, 3, 7):
                write("chunked", bytes([split, 0]) + s)
            write("response_head", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + s)
