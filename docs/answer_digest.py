#!/usr/bin/env python3
"""Recompute an answer's digest (the audit entry's `answer_digest`) from the answer as JSON.

Usage: python3 docs/answer_digest.py < answer.json
       (the body of POST /v1/query, or `shuzhu query --format json`)

The digest is SHA-256, in lowercase hex, over one line per row in the answer's order: the compact JSON
array [group, value, status, numerator, denominator, level] and a newline, where group is the list of
[dimension, label] pairs sorted by dimension, value is the IEEE-754 binary64 of the value as 16 hex
digits (big-endian) or null, numerator and denominator are integers or null, and level is a string
("" when the row has none). See docs/operations.md, "Checking an answer against the ledger".
"""
import hashlib
import json
import struct
import sys

answer = json.load(sys.stdin)
h = hashlib.sha256()
for row in answer["rows"]:
    group = sorted([k, v] for k, v in row["group"].items())
    value = row.get("value")
    bits = None if value is None else struct.pack(">d", float(value)).hex()
    line = [group, bits, row["status"], row.get("numerator"), row.get("denominator"), row.get("level", "")]
    h.update((json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))
print(h.hexdigest())
