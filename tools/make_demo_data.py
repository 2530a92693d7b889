"""The demo's dataset: synthetic text-to-SQL in the spirit of mlx-lm's WikiSQL guide.

Each record is a chat: the user gives a table schema and a question, the assistant answers
with one SQL query. The questions follow templates over random tables, so a small model
cannot answer them before fine-tuning (it does not know the exact output format) and can
after. Deterministic for a given --seed. Writes train/valid/test.jsonl into --out.

Usage: python3 tools/make_demo_data.py --out demo-data [--train 600 --valid 60 --test 60]
"""
import argparse
import json
import os
import random

TABLES = {
    "cities": {"name": ["Paris", "Lima", "Oslo", "Kyoto", "Cairo", "Quito", "Perth", "Dakar", "Turin", "Hanoi"],
               "country": ["France", "Peru", "Norway", "Japan", "Egypt", "Ecuador", "Australia", "Senegal", "Italy",
                           "Vietnam"],
               "population": None, "area": None},
    "books": {"title": ["Dune", "Emma", "Ulysses", "Beloved", "Hamlet", "Walden", "Ivanhoe", "Rebecca"],
              "author": ["Herbert", "Austen", "Joyce", "Morrison", "Shakespeare", "Thoreau", "Scott", "du Maurier"],
              "year": None, "pages": None},
    "players": {"player": ["Ana", "Ben", "Chen", "Dara", "Eli", "Farah", "Goran", "Hiro"],
                "team": ["Lions", "Hawks", "Bears", "Sharks", "Wolves", "Comets"],
                "goals": None, "matches": None},
    "products": {"product": ["lamp", "chair", "kettle", "desk", "mirror", "sofa", "clock"],
                 "brand": ["Acme", "Nordic", "Orion", "Vega", "Zenith"],
                 "price": None, "stock": None},
}


def example(rng):
    table = rng.choice(sorted(TABLES))
    cols = TABLES[table]
    text_cols = [c for c, v in cols.items() if v]
    num_cols = [c for c, v in cols.items() if v is None]
    kind = rng.randrange(4)
    key = rng.choice(text_cols)
    val = rng.choice(cols[key])
    num = rng.choice(num_cols)
    if kind == 0:
        q = f"What is the {num} of the {table[:-1]} whose {key} is {val}?"
        sql = f"SELECT {num} FROM {table} WHERE {key} = '{val}'"
    elif kind == 1:
        n = rng.randrange(10, 1000)
        q = f"How many {table} have {num} greater than {n}?"
        sql = f"SELECT COUNT(*) FROM {table} WHERE {num} > {n}"
    elif kind == 2:
        other = [c for c in text_cols if c != key][0] if len(text_cols) > 1 else key
        q = f"List the {other} of every {table[:-1]} with {key} {val}."
        sql = f"SELECT {other} FROM {table} WHERE {key} = '{val}'"
    else:
        agg, word = rng.choice([("MAX", "highest"), ("MIN", "lowest"), ("AVG", "average")])
        q = f"What is the {word} {num} among {table} with {key} {val}?"
        sql = f"SELECT {agg}({num}) FROM {table} WHERE {key} = '{val}'"
    schema = f"table: {table}\ncolumns: {', '.join(cols)}"
    return {"messages": [{"role": "user", "content": f"{schema}\nQ: {q}"},
                         {"role": "assistant", "content": sql}]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=600)
    ap.add_argument("--valid", type=int, default=60)
    ap.add_argument("--test", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    seen = set()
    for split, n in (("train", a.train), ("valid", a.valid), ("test", a.test)):
        rows = []
        while len(rows) < n:
            ex = example(rng)
            k = ex["messages"][0]["content"]
            if k in seen:
                continue
            seen.add(k)
            rows.append(ex)
        with open(os.path.join(a.out, f"{split}.jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print(f"wrote {a.train}/{a.valid}/{a.test} examples to {a.out}")


if __name__ == "__main__":
    main()
