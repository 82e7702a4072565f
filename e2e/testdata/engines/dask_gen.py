"""dask_gen.py DIR [PARTS LINES ROWS]: writes the input of the Dask example into DIR.

DIR/text/part-N.txt (PARTS files of LINES lines of words) and DIR/sales.csv
(ROWS rows of region, product, qty, price_cents), deterministic (a fixed
seed), so that every Dask worker makes the same input in its own volume and
the test makes it again in its own directory. Defaults: 4 parts of 1,500
lines, 20,000 rows. Leaves an existing input of the same sizes as it is:
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
    """Makes the input in root unless it is there with these sizes; True if it made it."""
    done = os.path.join(root, "COMPLETE")
    sizes = "%d %d %d\n" % (parts, lines, rows)
    try:
        with open(done) as f:
            if f.read() == sizes:
                return False
        os.remove(done)
    except FileNotFoundError:
        pass
    rnd = random.Random(18)
    os.makedirs(os.path.join(root, "text"), exist_ok=True)
    for name in os.listdir(os.path.join(root, "text")):
        os.remove(os.path.join(root, "text", name))
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
    with open(done, "w") as f:
        f.write(sizes)
    return True


if __name__ == "__main__":
    made = generate(sys.argv[1], *(int(a) for a in sys.argv[2:5]))
    print("input", "generated" if made else "already there", "in", sys.argv[1], flush=True)
