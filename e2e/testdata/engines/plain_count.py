"""plain_count.py DIR: the Dask example's computation in plain Python.

Prints one JSON object, {"words": {word: count}, "regions": {region:
{"rows", "qty", "revenue_cents"}}}, the same as dask_job.py's RESULT line
for the same input (dask_gen.py).
"""
import collections
import csv
import glob
import json
import os
import sys


def compute(root):
    words = collections.Counter()
    for path in sorted(glob.glob(os.path.join(root, "text", "*.txt"))):
        with open(path) as f:
            for line in f:
                words.update(line.split())
    regions = {}
    with open(os.path.join(root, "sales.csv"), newline="") as f:
        for row in csv.DictReader(f):
            r = regions.setdefault(row["region"], {"rows": 0, "qty": 0, "revenue_cents": 0})
            q = int(row["qty"])
            r["rows"] += 1
            r["qty"] += q
            r["revenue_cents"] += q * int(row["price_cents"])
    return {"words": dict(words), "regions": regions}


if __name__ == "__main__":
    print(json.dumps(compute(sys.argv[1]), sort_keys=True))
