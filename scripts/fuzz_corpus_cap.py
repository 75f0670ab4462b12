#!/usr/bin/env python3
# Reduces a grown fuzz corpus to at most N files and MAXB bytes reaching as many coverage edges as possible
# (greedy set cover over the COV lines of libFuzzer's merge control file); deletes the other files.
# From fuzz/: BIN -merge=1 -merge_control_file=/tmp/cf /tmp/empty corpus/TARGET; then
# scripts/fuzz_corpus_cap.py /tmp/cf corpus/TARGET 300 1000000
import os, sys
cf, corpus, n, maxb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lines = open(cf, errors='replace').read().split('\n')
count = int(lines[0]); files = lines[2:2+count]
cov = {}
for l in lines[2+count:]:
    p = l.split()
    if len(p) >= 2 and p[0] == 'COV':
        cov[int(p[1])] = set(p[2:])
covered, keep, total = set(), [], 0
remaining = dict(cov)
while remaining and len(keep) < n:
    best = max(remaining, key=lambda i: (len(remaining[i] - covered), -os.path.getsize(files[i])))
    gain = remaining.pop(best) - covered
    if not gain: break
    size = os.path.getsize(files[best])
    if total + size > maxb: continue
    keep.append(best); covered |= gain; total += size
alledges = set().union(*cov.values()) if cov else set()
keepset = {os.path.basename(files[i]) for i in keep}
for f in os.listdir(corpus):
    if f not in keepset: os.remove(os.path.join(corpus, f))
print(f"kept {len(keep)} files, {total} bytes, {len(covered)} of {len(alledges)} edges")
