"""dask_job.py --scheduler-file FILE [options]: the Dask example's client, run as a dcos job.

The input lives with the workers: each worker has a persistent volume
mounted at DATA in its sandbox (default "data"), and the job first has
every worker make the input there unless it is there (dask_gen.py, sent to
the workers with upload_file; it is deterministic, so every worker holds
the same input). The job then runs on the workers a word count (dask.bag,
one partition per text file, read by the worker that runs it) and a
group-by of sales.csv by region (dask.dataframe, PARTS partitions of rows,
each read by its worker). The client only submits tasks and gathers the
results: it needs no volume, only the scheduler's address (FILE, written
by the scheduler). Prints:

  WORKERS {address: {"nthreads", "memory_limit", "task"}}  the cluster
  RAN_ON [task ids]    the dcos tasks that ran this job's partitions
  RESULT {...}         the results, as plain_count.py prints them
"""
import argparse
import json
import os
import sys

import dask
import dask.bag as db
import dask.dataframe as dd
import pandas as pd
from distributed import Client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dask_gen  # noqa: E402


def where(_):
    return os.environ.get("DCOS_TASK_ID", "?")


def read_lines(path):
    with open(path) as f:
        return f.read().splitlines()


def read_rows(path, start, count):
    """Rows [start, start+count) of the CSV at path (its header excepted)."""
    return pd.read_csv(path, skiprows=range(1, start + 1), nrows=count)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scheduler-file", required=True)
    p.add_argument("--data", default="data", help="the input's directory in each worker's sandbox")
    p.add_argument("--workers", type=int, default=1, help="workers to wait for")
    p.add_argument("--parts", type=int, default=4)
    p.add_argument("--lines", type=int, default=1500)
    p.add_argument("--rows", type=int, default=20000)
    a = p.parse_args()

    client = Client(scheduler_file=a.scheduler_file, timeout="60s")
    client.wait_for_workers(a.workers, timeout=60)
    info = client.scheduler_info()["workers"]
    tasks = client.run(lambda: os.environ.get("DCOS_TASK_ID", "?"))
    print("WORKERS", json.dumps({w: {"nthreads": v["nthreads"], "memory_limit": v["memory_limit"], "task": tasks.get(w)}
                                 for w, v in info.items()}, sort_keys=True), flush=True)

    client.upload_file(os.path.join(HERE, "dask_gen.py"))
    made = client.run(dask_gen.generate, a.data, a.parts, a.lines, a.rows)
    print("INPUT", json.dumps({tasks.get(w): m for w, m in made.items()}, sort_keys=True), flush=True)

    paths = [os.path.join(a.data, "text", "part-%d.txt" % i) for i in range(a.parts)]
    bag = db.from_sequence(paths, npartitions=len(paths)).map(read_lines).flatten()
    words = dict(bag.map(str.split).flatten().frequencies().compute())
    ran_on = sorted(set(db.from_sequence(paths, npartitions=len(paths)).map_partitions(lambda p: [where(p)]).compute()))

    sales = os.path.join(a.data, "sales.csv")
    nparts = 4
    step = -(-a.rows // nparts)
    meta = pd.DataFrame({"region": pd.Series(dtype=object), "product": pd.Series(dtype=object),
                         "qty": pd.Series(dtype="int64"), "price_cents": pd.Series(dtype="int64")})
    df = dd.from_delayed([dask.delayed(read_rows)(sales, i * step, step) for i in range(nparts)], meta=meta)
    df = df.assign(revenue_cents=df.qty * df.price_cents)
    g = df.groupby("region").agg({"product": "count", "qty": "sum", "revenue_cents": "sum"}).compute()
    regions = {str(r): {"rows": int(v["product"]), "qty": int(v["qty"]), "revenue_cents": int(v["revenue_cents"])}
               for r, v in g.iterrows()}

    result = {"words": {str(k): int(v) for k, v in words.items()}, "regions": regions}
    print("RAN_ON", json.dumps(ran_on), flush=True)
    print("RESULT", json.dumps(result, sort_keys=True), flush=True)
    client.close()


if __name__ == "__main__":
    main()
