"""Regenerate the small example databases the example manifest names (deterministic content).

python examples/make_examples.py                    # (re)write both databases
python examples/make_examples.py --more-orders 15   # append 15 orders to northwind.db (the Quick start's change)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

HERE = Path(__file__).parent

CUSTOMERS = [
    ("ALFKI", "Alfreds Futterkiste", "Berlin", "Germany"),
    ("ANATR", "Ana Trujillo Emparedados y helados", "México D.F.", "Mexico"),
    ("AROUT", "Around the Horn", "London", "UK"),
    ("BERGS", "Berglunds snabbköp", "Luleå", "Sweden"),
    ("BLAUS", "Blauer See Delikatessen", "Mannheim", "Germany"),
    ("BONAP", "Bon app'", "Marseille", "France"),
    ("BOTTM", "Bottom-Dollar Markets", "Tsawassen", "Canada"),
    ("CHOPS", "Chop-suey Chinese", "Bern", "Switzerland"),
]
PRODUCTS = [
    ("Chai", "Beverages", 18.0),
    ("Chang", "Beverages", 19.0),
    ("Aniseed Syrup", "Condiments", 10.0),
    ("Chef Anton's Cajun Seasoning", "Condiments", 22.0),
    ("Grandma's Boysenberry Spread", "Condiments", 25.0),
    ("Uncle Bob's Organic Dried Pears", "Produce", 30.0),
    ("Northwoods Cranberry Sauce", "Condiments", 40.0),
    ("Mishi Kobe Niku", "Meat/Poultry", 97.0),
    ("Ikura", "Seafood", 31.0),
    ("Queso Cabrales", "Dairy Products", 21.0),
]
CITIES = [
    ("Berlin", "Germany", 52.52, 13.405, 3850809),
    ("London", "UK", 51.5072, -0.1276, 8799800),
    ("Paris", "France", 48.8566, 2.3522, 2102650),
    ("Madrid", "Spain", 40.4168, -3.7038, 3332035),
    ("Rome", "Italy", 41.9028, 12.4964, 2746984),
    ("Lisbon", "Portugal", 38.7223, -9.1393, 545923),
    ("Stockholm", "Sweden", 59.3293, 18.0686, 984748),
    ("Vienna", "Austria", 48.2082, 16.3738, 1982097),
]


def build(path: Path, script) -> None:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        script(conn)
    conn.execute("vacuum")
    conn.close()


def northwind(conn: sqlite3.Connection) -> None:
    conn.execute("create table customers (id text primary key, name text, city text, country text)")
    conn.executemany("insert into customers values (?, ?, ?, ?)", CUSTOMERS)
    conn.execute("create table products (id integer primary key, name text, category text, unit_price real)")
    conn.executemany("insert into products (name, category, unit_price) values (?, ?, ?)", PRODUCTS)
    conn.execute(
        "create table orders (id integer primary key, customer_id text references customers(id), "
        "product_id integer references products(id), quantity integer, ordered text)"
    )
    orders = [
        (
            CUSTOMERS[i % len(CUSTOMERS)][0],
            (i * 7) % len(PRODUCTS) + 1,
            (i * 3) % 20 + 1,
            f"1997-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
        )
        for i in range(60)
    ]
    conn.executemany(
        "insert into orders (customer_id, product_id, quantity, ordered) values (?, ?, ?, ?)", orders
    )
    conn.execute(
        "create view order_totals as select o.id, c.name as customer, p.name as product, "
        "o.quantity * p.unit_price as total from orders o join customers c on c.id = o.customer_id "
        "join products p on p.id = o.product_id"
    )


def cities(conn: sqlite3.Connection) -> None:
    conn.execute(
        "create table cities (id integer primary key, name text, country text, latitude real, longitude real, population integer)"
    )
    conn.executemany(
        "insert into cities (name, country, latitude, longitude, population) values (?, ?, ?, ?, ?)", CITIES
    )


def more_orders(path: Path, count: int) -> None:
    """Append ``count`` orders to the northwind database, as a data change to plan."""
    conn = sqlite3.connect(path)
    with conn:
        start = conn.execute("select count(*) from orders").fetchone()[0]
        conn.executemany(
            "insert into orders (customer_id, product_id, quantity, ordered) values (?, ?, ?, ?)",
            [
                (CUSTOMERS[i % len(CUSTOMERS)][0], i % len(PRODUCTS) + 1, 1, "1998-01-01")
                for i in range(count)
            ],
        )
    conn.close()
    print(f"added {count} orders to {path} ({start} -> {start + count})")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--more-orders"]:
        more_orders(HERE / "northwind.db", int(sys.argv[2]))
        raise SystemExit(0)
    build(HERE / "northwind.db", northwind)
    build(HERE / "cities.db", cities)
    print("wrote", HERE / "northwind.db", HERE / "cities.db")
