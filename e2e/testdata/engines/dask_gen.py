"""dask_gen.py DIR: writes the input of the Dask example into DIR.

DIR/text/part-N.txt (lines of words) and DIR/sales.csv (region, product,
qty, price_cents), deterministic (a fixed seed), so that the test makes the
same input again in its own directory. Leaves an existing input as it is:
DIR is a persistent volume and the input outlives the tasks that use it.
"""
import csv
import os
import random
import sys

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu "
         "nu xi omicron pi rho sigma tau upsilon phi chi psi omega").split()
REGIONS = ["north", "south", "east", "west", "centre"]
PRODUCTS = ["disk", "cpu", "ram", "nic", "psu", "fan"]


def generate(root, parts=4, lines=1500, rows=20000):
    done = os.path.join(root, "COMPLETE")
    if os.path.exists(done):
        return False
    rnd = random.Random(18)
    os.makedirs(os.path.join(root, "text"), exist_ok=True)
    for p in range(parts):
        with open(os.path.join(root, "text", "part-%d.txt" % p), "w") as f:
            for _ in range(lines):
                n = rnd.randint(1, 12)
                # Zipf-like: early words are more frequent.
                f.write(" ".join(WORDS[min(int(rnd.expovariate(0.25)), len(WORDS) - 1)] for _ in range(n)) + "\n")
    with open(os.path.join(root, "sales.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["region", "product", "qty", "price_cents"])
        for _ in range(rows):
            w.writerow([rnd.choice(REGIONS), rnd.choice(PRODUCTS), rnd.randint(1, 20), rnd.randint(100, 99999)])
    open(done, "w").close()
    return True


if __name__ == "__main__":
    made = generate(sys.argv[1])
    print("input", "generated" if made else "already there", "in", sys.argv[1], flush=True)
