"""DuckDB side of bench/node_vs_duckdb.sh, driven over stdin/stdout by node/examples/engine_bench.rs.

Loads the cases CSV into a DuckDB table once (timed, reported), then answers one JSON command per line:
{"query": NAME} runs that query's SQL and answers {"seconds": wall time of execute + fetch, "rows":
[[key, time_label, numerator, denominator], ...]}. The SQL mirrors the node's definitions
(policy/src/indicator.rs, node/src/engine.rs): the period is 2019-01 .. 2024-12; "active" in a
sub-period = filed on or before its last day and not closed before its first day.
"""

import json
import sys
import time

import duckdb

P_FROM, P_TO = "DATE '2019-01-01'", "DATE '2024-12-31'"
FIRST, LAST = 2019, 2024

# Grouping: (record key column, time index of a date column, label of a time index,
#            first and last time index of the period)
GROUPINGS = {
    "region_year": ("region_code", lambda d: f"year({d})", lambda b: f"CAST({b} AS VARCHAR)", FIRST, LAST),
    "cause_month": (
        "cause",
        lambda d: f"(year({d}) * 12 + month({d}) - 1)",
        lambda b: f"printf('%04d-%02d', {b} // 12, {b} % 12 + 1)",
        FIRST * 12,
        LAST * 12 + 11,
    ),
}


def closed_in_p(extra=""):
    return f"closed_on BETWEEN {P_FROM} AND {P_TO}{extra}"


def sql(indicator, grouping):
    key, tix, label, lo, hi = GROUPINGS[grouping]
    if indicator == "closure_rate":
        return f"""
WITH num AS (
  SELECT {key} AS k, {tix('closed_on')} AS b, count(*) AS n FROM cases WHERE {closed_in_p()} GROUP BY ALL),
den AS (
  SELECT k, b, count(*) AS n FROM (
    SELECT {key} AS k,
           unnest(range(greatest({tix('filed_on')}, {lo}),
                        least(coalesce({tix('closed_on')}, {hi}), {hi}) + 1)) AS b
    FROM cases WHERE filed_on <= {P_TO} AND (closed_on IS NULL OR closed_on >= {P_FROM}))
  GROUP BY ALL)
SELECT coalesce(num.k, den.k), {label('coalesce(num.b, den.b)')}, coalesce(num.n, 0), coalesce(den.n, 0)
FROM num FULL OUTER JOIN den ON num.k = den.k AND num.b = den.b"""
    if indicator == "avg_trial_days":
        return f"""
SELECT k, {label('b')}, s, n FROM (
  SELECT {key} AS k, {tix('closed_on')} AS b, sum(closed_on - filed_on) AS s, count(*) AS n
  FROM cases WHERE {closed_in_p()} GROUP BY ALL)"""
    if indicator == "mediation_withdrawal_rate":
        return f"""
SELECT k, {label('b')}, m, n FROM (
  SELECT {key} AS k, {tix('closed_on')} AS b,
         count(*) FILTER (WHERE closure_method IN ('调解', '准予撤诉', '按撤诉处理')) AS m, count(*) AS n
  FROM cases WHERE type_code = '民初' AND {closed_in_p()} GROUP BY ALL)"""
    raise ValueError(indicator)


def main():
    csv_path = sys.argv[1]
    con = duckdb.connect()
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    started = time.perf_counter()
    con.execute(
        f"""CREATE TABLE cases AS SELECT * REPLACE (
              CAST(filed_on AS DATE) AS filed_on, CAST(closed_on AS DATE) AS closed_on,
              CAST(deadline_on AS DATE) AS deadline_on)
            FROM read_csv('{csv_path}', header = true, all_varchar = true)"""
    )
    rows = con.execute("SELECT count(*) FROM cases").fetchone()[0]
    print(json.dumps({"loaded": rows, "seconds": time.perf_counter() - started,
                      "threads": threads, "version": duckdb.__version__}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        indicator, grouping = cmd["query"].split("/")
        q = sql(indicator, grouping)
        t0 = time.perf_counter()
        result = con.execute(q).fetchall()
        seconds = time.perf_counter() - t0
        out = [[str(k), str(t), int(a), int(b)] for k, t, a, b in result]
        print(json.dumps({"seconds": seconds, "rows": out}), flush=True)


if __name__ == "__main__":
    main()
