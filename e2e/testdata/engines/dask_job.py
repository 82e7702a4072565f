"""dask_job.py DATA SCHEDULER_FILE [WORKERS]: the Dask example's client.

Makes the input in DATA (a persistent volume) unless it is there
(dask_gen.py), connects to the scheduler named by SCHEDULER_FILE, waits for
WORKERS workers (default 1), and runs on them a word count (dask.bag) over
DATA/text and a group-by (dask.dataframe) of DATA/sales.csv by region. The
client reads the input and hands it to the cluster, so the workers need no
access to the volume. Prints:

  WORKERS {address: {"nthreads", "memory_limit", "task"}}  the cluster
  RAN_ON [task ids]    the dcos tasks that ran this job's partitions
  RESULT {...}         the results, as plain_count.py prints them

and writes DATA/result.json.
"""
import glob
import json
import os
import sys

import dask.bag as db
import dask.dataframe as dd
import pandas as pd
from distributed import Client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dask_gen  # noqa: E402


def where(_):
    return os.environ.get("DCOS_TASK_ID", "?")


def main(data, scheduler_file, want_workers):
    dask_gen.generate(data)
    client = Client(scheduler_file=scheduler_file, timeout="60s")
    client.wait_for_workers(want_workers, timeout=60)
    info = client.scheduler_info()["workers"]
    tasks = client.run(lambda: os.environ.get("DCOS_TASK_ID", "?"))
    print("WORKERS", json.dumps({a: {"nthreads": w["nthreads"], "memory_limit": w["memory_limit"], "task": tasks.get(a)}
                                 for a, w in info.items()}, sort_keys=True), flush=True)

    lines = []
    for path in sorted(glob.glob(os.path.join(data, "text", "*.txt"))):
        with open(path) as f:
            lines.extend(f.read().splitlines())
    bag = db.from_sequence(lines, npartitions=8)
    words = dict(bag.map(str.split).flatten().frequencies().compute())
    ran_on = sorted(set(bag.map_partitions(lambda p: [where(p)]).compute()))

    sales = pd.read_csv(os.path.join(data, "sales.csv"))
    df = dd.from_pandas(sales, npartitions=4)
    df = df.assign(revenue_cents=df.qty * df.price_cents)
    g = df.groupby("region").agg({"product": "count", "qty": "sum", "revenue_cents": "sum"}).compute()
    regions = {str(r): {"rows": int(v["product"]), "qty": int(v["qty"]), "revenue_cents": int(v["revenue_cents"])}
               for r, v in g.iterrows()}

    result = {"words": {str(k): int(v) for k, v in words.items()}, "regions": regions}
    print("RAN_ON", json.dumps(ran_on), flush=True)
    print("RESULT", json.dumps(result, sort_keys=True), flush=True)
    with open(os.path.join(data, "result.json"), "w") as f:
        json.dump(result, f, sort_keys=True)
    client.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
