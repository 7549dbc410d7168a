"""Write the tiny dataset under tests/test_data/tiny (run once; the files are committed).

120 users, 80 items in 8 categories; each user likes two categories (chosen partly by the user's
`age` feature) and interacts 12-30 times, mostly within those categories, so models have structure to
learn in a one-epoch test.
"""

import os
import random

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny")


def main(seed=7, n_users=120, n_items=80, n_cats=8):
    rng = random.Random(seed)
    os.makedirs(HERE, exist_ok=True)
    item_cat = {i: (i - 1) % n_cats for i in range(1, n_items + 1)}
    with open(os.path.join(HERE, "tiny.item"), "w") as f:
        f.write("item_id:token\tcategory:token\tgenre:token_seq\n")
        for i, c in item_cat.items():
            f.write(f"{i}\tc{c}\tg{c} g{(c + 1) % n_cats}\n")
    ages = ["young", "mid", "old"]
    with open(os.path.join(HERE, "tiny.user"), "w") as uf, open(os.path.join(HERE, "tiny.inter"), "w") as inf:
        uf.write("user_id:token\tage:token\tgender:token\toccupation:token\n")
        inf.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for u in range(1, n_users + 1):
            age = rng.randrange(3)
            uf.write(f"{u}\t{ages[age]}\t{rng.choice('MF')}\tjob{rng.randrange(4)}\n")
            likes = [(age * 2 + rng.randrange(3)) % n_cats, rng.randrange(n_cats)]
            t = 1_000_000 + u * 1000
            for _ in range(rng.randint(12, 30)):
                cat = rng.choice(likes) if rng.random() < 0.85 else rng.randrange(n_cats)
                items = [i for i, c in item_cat.items() if c == cat]
                item = items[min(int(rng.expovariate(0.6)), len(items) - 1)]
                t += rng.randint(1, 50)
                inf.write(f"{u}\t{item}\t{rng.randint(1, 5)}\t{t}\n")


if __name__ == "__main__":
    main()
