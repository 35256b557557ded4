"""Which databases are inlined and which are left for S3, and the explanation users read."""

from __future__ import annotations

import json
import zipfile

from dl.build.locations import HEADROOM, LAMBDA_UNZIPPED_LIMIT, decide_locations
from dl.build.package import build_package
from dl.manifest.model import Database
from tests.build.conftest import make_instance
from tests.conftest import make_db


def dbs(tmp_path, **rows):
    return [
        Database(name, make_db(tmp_path / f"{name}.db", {"t": n}), f"{name}.db") for name, n in rows.items()
    ]


def test_everything_small_is_inlined(tmp_path):
    decisions = decide_locations(dbs(tmp_path, a=10, b=20), dependencies_size=15_000_000)
    assert [d.location for d in decisions] == ["inline", "inline"]
    assert "inlined" in decisions[0].reason and "250 MB" in decisions[0].reason
    # 15 MB of 262,144,000 bytes: said as the share used, not as "headroom" (which read as nearly full)
    assert decisions[0].reason.endswith(" unzipped, 6% of Lambda's 250 MB unzipped limit")
    assert "headroom" not in decisions[0].reason


def test_what_would_pass_lambdas_limit_goes_to_s3_smallest_first(tmp_path):
    small, big = dbs(tmp_path, small=10, big=5000)
    room = small.path.stat().st_size + 1000  # only the small one fits next to the dependencies
    deps = LAMBDA_UNZIPPED_LIMIT - HEADROOM - room
    decisions = decide_locations([big, small], dependencies_size=deps)  # manifest order is kept
    assert [(d.name, d.location) for d in decisions] == [("big", "s3"), ("small", "inline")]
    assert decisions[0].key == f"databases/{decisions[0].sha256}.db"
    assert "left for S3" in decisions[0].reason
    assert "250 MB unzipped limit" in decisions[0].reason
    assert "fetched from S3 into /tmp on cold start" in decisions[0].reason


def test_inline_limit_leaves_databases_for_s3_in_the_package_too(built, package_dir, package_cache):
    instance, _ = built
    extra = instance.databases[1].path  # ~8 kB; northwind ~50 kB
    limited = make_instance({d.name: d.path for d in instance.databases})
    result = build_package(
        limited,
        package_dir / "limited.zip",
        cache_dir=package_cache,
        inline_limit=extra.stat().st_size,
        log=lambda _: None,
    )
    assert [(d.name, d.location) for d in result.databases] == [("northwind", "s3"), ("extra", "inline")]
    assert "inline limit" in result.databases[0].reason
    with zipfile.ZipFile(result.path) as zf:
        names = set(zf.namelist())
        doc = json.loads(zf.read("dl_instance/instance.json"))
    assert "dl_instance/databases/extra.db" in names
    assert "dl_instance/databases/northwind.db" not in names
    assert doc["databases"][0]["location"] == "s3"
    assert doc["inspect"]["northwind"]["tables"]["orders"]["count"] == 830  # inspected even when not inlined
