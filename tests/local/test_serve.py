"""`dl serve`: real HTTP requests to the real package, run in an isolated interpreter as Lambda runs it.

The tests on the session's `served` instances run on both Datasette lines (`line`). Where the lines' own APIs
differ (1.0 returns rows as objects, counts and facets on request with `_extra=`, SQL under `/db/-/query`),
`Api` says how each line is asked; the assertions about what the package adds (prefix, host, 404s, size,
plugins, metadata, settings) are the same.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import subprocess
import time
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from datasette.app import Datasette

from dl.manifest.lines import locked_version
from tests.runtime.serving import Reply, fetch, make_shop_db, start_serve, stop_serve


class Api:
    """How each Datasette line is asked for the same thing."""

    def __init__(self, line: str):
        self.line = line
        self.v1 = line != "0.65"

    def sql(self, database: str, query: str) -> str:
        """The JSON URL path of a SQL query (query already URL-encoded)."""
        return f"{database}/-/query.json?sql={query}" if self.v1 else f"{database}.json?sql={query}"

    def sql_page(self, database: str, query: str) -> str:
        return f"{database}/-/query?sql={query}" if self.v1 else f"{database}?sql={query}"

    def table(self, path: str, extra: str = "") -> str:
        """A table's JSON path; ``extra`` names 1.0's ``_extra=`` blocks (0.65 always includes them)."""
        if not (self.v1 and extra):
            return path
        return path + ("&" if "?" in path else "?") + "&".join(f"_extra={e}" for e in extra.split(","))

    @staticmethod
    def ids(page: dict) -> list:
        return [row["id"] if isinstance(row, dict) else row[0] for row in page["rows"]]

    def count(self, page: dict) -> int:
        return page["count"] if self.v1 else page["filtered_table_rows_count"]

    def facet(self, page: dict, column: str) -> dict:
        results = page["facet_results"]
        return (results["results"] if self.v1 else results)[column]


@pytest.fixture(scope="session")
def api(line) -> Api:
    return Api(line)


@pytest.fixture(scope="session")
def site(served):
    return served.urls["site"]


@pytest.fixture(scope="session")
def plain(served):
    return served.urls["plain"]


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_each_instance_gets_its_own_port_and_prefix(served, site, plain):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/data/", site)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", plain)
    assert origin(site) != origin(plain)


def test_runs_the_package_python_not_the_tools(site, line):
    versions = fetch(site + "-/versions.json").json()
    assert versions["datasette"]["version"] == locked_version(line)  # the line's locked release
    assert versions["python"]["version"].startswith("3.13")  # the instance's runtime, not the test's Python


def test_index_page_shows_metadata(site):
    reply = fetch(site)
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Runtime test site</h1>" in reply.text
    assert "Served by the exact Lambda package" in reply.text


def test_table_description_from_metadata(site):
    assert "Things for sale" in fetch(site + "data/items").text


def test_table_json_applies_default_page_size_setting(site, plain, api):
    page = fetch(site + api.table("data/items.json", "count")).json()
    assert api.ids(page) == [1, 2, 3, 4, 5]
    assert api.count(page) == 23
    assert len(fetch(plain + "data/items.json").json()["rows"]) == 23  # Datasette's default of 100


def test_row_json(site, api):
    row = fetch(site + ("data/items/2.json" if api.v1 else "data/items/2.json?_shape=objects")).json()
    assert row["rows"] == [
        {
            "id": 2,
            "name": "item 1",
            "category": "b",
            "value": 1.5,
            "owner_id": 2,
            "picture": {"$base64": True, "encoded": "AQD/"},
        }
    ]


def test_csv(site, api):
    # Datasette 1.0a41 itself cannot write a blob column as CSV ("No item with that key", plain Datasette too)
    query = "_size=3&_labels=off" + ("&_nocol=picture" if api.v1 else "")
    reply = fetch(site + f"data/items.csv?{query}")
    assert reply.status == 200
    lines = reply.text.splitlines()
    assert lines[0] == "id,name,category,value,owner_id" + ("" if api.v1 else ",picture")
    assert lines[1].startswith("1,item 0,a,0.0,1")
    assert len(lines) == 4


def test_sql_query(site, api):
    reply = fetch(
        site
        + api.sql("data", "select+category,+count(*)+as+n+from+items+group+by+category")
        + "&_shape=array"
    )
    assert reply.json() == [{"category": "a", "n": 8}, {"category": "b", "n": 8}, {"category": "c", "n": 7}]


def test_sql_query_page_form_posts_back_under_the_prefix(site, api):
    page = fetch(site + api.sql_page("data", "select+1")).text
    assert re.search(r'<form class="sql[^"]*" action="/data/data"', page)


def test_static_assets(site):
    reply = fetch(site + "-/static/app.css")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/css")
    assert b"Reset and Page Setup" in reply.body


def test_binary_responses_survive_base64(site):
    reply = fetch(site + "data/items/4.blob?_blob_column=picture")
    assert reply.status == 200
    assert reply.body == bytes([3, 0, 255])


def test_facets(site, api):
    data = fetch(site + api.table("data/items.json?_facet=category", "facet_results")).json()
    results = api.facet(data, "category")["results"]
    assert [(r["value"], r["count"]) for r in results] == [("a", 8), ("b", 8), ("c", 7)]
    assert results[0]["toggle_url"].startswith(site + "data/items.json?")


def test_pagination_next_url_names_the_public_host(site, api):
    first = fetch(site + "data/items.json?_size=10")
    next_url = first.json()["next_url"]
    assert next_url.startswith(site + "data/items.json?")
    assert first.headers["link"] == f'<{next_url}>; rel="next"'
    second = fetch(next_url).json()
    assert api.ids(second) == list(range(11, 21))
    assert fetch(second["next_url"]).json()["next_url"] is None


def test_404s_are_404s(site):
    page = fetch(site + "data/no_such_table")
    assert page.status == 404
    assert "text/html" in page.headers["content-type"]
    assert fetch(site + "nope.json").status == 404


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("data/items/", "/data/data/items"),  # trailing slash: the database is named like the prefix
        ("data/items/?_size=2", "/data/data/items?_size=2"),
        ("data/it%2Fems", "/data/data/it~2Fems"),  # % to ~ encoding
        ("data/items.jsono", "/data/data/items.json?_shape=objects"),  # 0.65 only: 1.0 dropped .jsono
    ],
)
def test_redirects_stay_under_the_prefix(site, api, path, location):
    if api.v1 and path.endswith(".jsono"):
        pytest.skip("Datasette 1.0 has no .jsono shortcut (plain Datasette 1.0a41 answers 500 for it)")
    reply = fetch(site + path)
    assert reply.status in (301, 302)
    assert reply.headers["location"] == location


def test_the_bare_prefix_redirects_to_it(site):
    reply = fetch(origin(site) + "/data?x=1")
    assert (reply.status, reply.headers["location"]) == (302, "/data/?x=1")


@pytest.mark.parametrize("path", ["/", "/data.json", "/-/static/app.css", "/dat/", "/robots.txt", "/datax/"])
def test_outside_the_prefix_is_404(site, path):
    reply = fetch(origin(site) + path)
    assert reply.status == 404
    assert "under /data/" in reply.text


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "action") and value:
                self.links.append(value)


def links_of(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.links


CRAWLED_PAGES = [
    "",
    "data",
    "data/items",
    "data/items?_facet=category&_sort=value",
    "data/items/3",
    "data/owners",
    "data/cheap_items",
    "SQL",
    "data/no_such_table",
    "other",
    "-/metadata",  # 0.65 only (1.0 keeps metadata in its internal database)
    "-/plugins",
]


def test_every_link_in_every_kind_of_page_stays_under_the_prefix(site, api):
    """Links, form actions, scripts and stylesheets: all under /data/ and all answering."""
    internal = set()
    pages = [api.sql_page("data", "select+*+from+items+limit+2") if p == "SQL" else p for p in CRAWLED_PAGES]
    for page in [p for p in pages if not (api.v1 and p == "-/metadata")]:
        for link in links_of(fetch(site + page).text):
            absolute = urljoin(site + page, link)
            if urlsplit(absolute).netloc != urlsplit(site).netloc:
                continue  # datasette.io and other external links
            assert absolute.startswith(site), f"{page!r} links outside the prefix: {link!r}"
            internal.add(absolute.split("#")[0])
    assert len(internal) > 40
    broken = {url: fetch(url).status for url in sorted(internal)}
    assert {url: status for url, status in broken.items() if status >= 400} == {}


# Pages whose links Datasette builds from the request path (facet toggles, "...", _where removal, .jsono),
# on a database not named like the prefix, where a link that loses the prefix cannot pass by luck.
def request_path_links(api) -> list[str]:
    pages = [
        "tagged/posts?_facet_array=tags",
        api.table("tagged/posts.json?_facet_array=tags", "facet_results"),
        "tagged/posts?_facet_date=created",
        api.table("tagged/posts.json?_facet_date=created", "facet_results"),
        "tagged/posts?_facet=title&_facet_size=3",
        api.table("tagged/posts.json?_facet=title&_facet_size=3", "facet_results"),
        "tagged/posts?_where=id%3E3&_facet=created",
        api.table(
            "tagged/posts.json?_where=id%3E3&_facet_array=tags&tags__arraycontains=tag1&_size=2",
            "facet_results",
        ),
        "tagged/posts.json?_size=2",
        api.sql_page("tagged", "select+*+from+posts+limit+3"),
    ]
    if not api.v1:  # 0.65's .jsono redirect (with a Link header) and its /-/config.json redirect
        pages += ["tagged/posts.jsono?_size=1", "-/config.json"]
    return pages


def local_urls(reply: Reply, site: str) -> list[str]:
    """Every URL of this site in a reply: HTML links, JSON strings, Location and Link headers."""
    found = [reply.headers.get("location", "")]
    found += re.findall(r"<([^>]*)>", reply.headers.get("link", ""))
    if reply.headers.get("content-type", "").startswith("text/html"):
        found += links_of(reply.text)
    elif reply.headers.get("content-type", "").startswith("application/json"):
        found += re.findall(r'"((?:/|http://)[^"\\]*)"', reply.text)
    host = urlsplit(site).netloc
    return [
        u for u in found if u and (u.startswith("/") and not u.startswith("//") or urlsplit(u).netloc == host)
    ]


def test_links_built_from_the_request_path_keep_the_prefix_once(site, api):
    """Facet toggles, "..." and _where links, Link headers: under /data/ once, never doubled, all answering."""
    seen = set()
    for page in request_path_links(api):
        reply = fetch(site + page)
        assert reply.status in (200, 301, 302), page
        for url in local_urls(reply, site):
            absolute = urljoin(site + page, html.unescape(url))
            assert absolute.startswith(site), f"{page!r} links outside the prefix: {url!r}"
            assert not absolute.startswith(site + "data/tagged"), f"{page!r} doubles the prefix: {url!r}"
            seen.add(absolute.split("#")[0])
    toggles = [url for url in seen if "tags__arraycontains=" in url or "created__date=" in url]
    assert len(toggles) >= 4  # the array and date facet links are among them
    assert any("_facet_size=max" in url for url in seen)
    statuses = {url: fetch(url).status for url in sorted(seen)}
    assert {url: status for url, status in statuses.items() if status >= 400} == {}


def test_json_alternates_stay_under_the_prefix(site, api):
    page = fetch(site + "data/items")
    alternate = f"{site}data/items.json"
    if api.v1:  # 1.0 writes the URL in angle brackets and adds the next page
        assert page.headers["link"].startswith(
            f'<{alternate}>; rel="alternate"; type="application/json+datasette",'
        )
    else:
        assert page.headers["link"] == f'{alternate}; rel="alternate"; type="application/json+datasette"'
    assert f'href="{alternate}"' in page.text
    assert fetch(alternate).status == 200


def test_cors_headers_only_where_enabled(site, plain):
    assert fetch(site + "data/items.json").headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in fetch(plain + "data/items.json").headers


def test_plugin_is_installed_active_and_configured(site, plain):
    plugins = fetch(site + "-/plugins.json").json()
    assert "datasette-block-robots" in [p["name"] for p in plugins]
    robots = fetch(site + "robots.txt")  # the plugin's configuration from metadata (1.0: its configuration)
    assert (robots.status, robots.text.split()) == (200, ["User-agent:", "*", "Disallow:", "/data/other"])
    unconfigured = fetch(plain + "robots.txt")
    assert unconfigured.text.split() == ["User-agent:", "*", "Disallow:", "/"]


def test_permissions_from_metadata_are_enforced(site, api):
    """allow_sql on a database (1.0 reads it from its configuration only): SQL refused there, not elsewhere."""
    assert fetch(site + api.sql("other", "select+1")).status == 403
    assert fetch(site + "other/items.json").status == 200  # viewing is still allowed
    assert fetch(site + api.sql("data", "select+1")).status == 200


def test_canned_queries_and_table_options_from_metadata(site, api):
    rows = fetch(site + "data/cheap.json?_shape=array").json()
    assert rows == [
        {"name": "item 0", "value": 0.0},
        {"name": "item 1", "value": 1.5},
        {"name": "item 2", "value": 3.0},
        {"name": "item 3", "value": 4.5},
    ]
    assert "Cheap things" in fetch(site + "data/cheap").text
    owners = fetch(site + "data/owners.json").json()  # sort_desc: name
    assert [row["name"] if isinstance(row, dict) else row[1] for row in owners["rows"]] == [
        "cy",
        "bob",
        "ada",
    ]


def test_database_download_is_served_locally(site, shop_files):
    reply = fetch(site + "data.db")
    assert reply.status == 200
    assert reply.body == (shop_files / "data.db").read_bytes()


def test_a_csv_export_over_lambdas_limit_is_served_directly_and_the_log_says_so(served, site):
    """On Lambda it goes through S3 (tests/runtime/test_handler.py); dl serve has no bucket."""
    before = len(served.lines)
    reply = fetch(site + "tagged/readings.csv?_stream=on&_size=max")
    assert reply.status == 200
    assert len(reply.body) > 8_000_000
    lines = reply.text.splitlines()
    assert (lines[0], len(lines)) == ("id,station,note", 90_001)
    assert lines[-1].startswith("90000,station-39,reading 89999 ") and lines[-1].endswith(" ünïcode")
    deadline = time.monotonic() + 5
    while not any("served directly by dl serve" in line for line in served.log_since(before)):
        assert time.monotonic() < deadline, served.log_since(before)
        time.sleep(0.1)


def test_head_and_post_requests(site, api):
    head = fetch(site + "data/items.json", method="HEAD")
    assert (head.status, head.body) == (200, b"")
    post = fetch(site + "data/items.json", method="POST", data=b"x=1")
    if api.v1:  # Datasette's own answers
        assert (post.status, post.text) == (405, "Method not allowed")
    else:
        assert post.json()["error"] == "You may only POST to a canned query"


def test_request_log_is_one_compact_line(served, site):
    before = len(served.lines)
    fetch(site + "data/items.json?_size=1")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = served.log_since(before)
        if any(re.fullmatch(r"\[site\] GET /data/data/items\.json\?_size=1 200 \d+ms", line) for line in log):
            return
        time.sleep(0.1)
    raise AssertionError(f"no request log line in {served.log_since(before)}")


COMPARED = [
    "/.json",
    "/data.json",
    "/data/items.json",
    "/data/items.json?_facet=category&_facet=owner_id",
    "/data/items.json?_sort_desc=value&_size=4",
    "/data/items.json?category=b&_shape=objects",
    "/data/items.json?_labels=on&_size=3",
    "/data/items/7.json",
    "/data/owners.json?_shape=array",
    "/data/cheap_items.json",
    "/data.json?sql=select+name,+value+from+items+where+value+%3E+:v&v=20",  # sent alike by both clients
    "/other/items.json?_search=x",
    "/-/metadata.json",
    "/-/settings.json",
    "/data/no_such_table.json",
]


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k != "query_ms"}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


PLAIN_DATASETTE = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from datasette.app import Datasette

async def main():
    ds = Datasette(immutables=sys.argv[2:4])
    answers = {}
    for path in json.loads(sys.stdin.read()):
        r = await ds.client.get(path)
        redirect = 300 <= r.status_code < 400
        answers[path] = [r.status_code, r.headers["location"] if redirect else r.json()]
    print(json.dumps(answers))

asyncio.run(main())
"""


def plain_datasette_answers(line: str, shop_files) -> dict:
    """{path: (status, JSON)} from plain Datasette of ``line``: the test's own for 0.65; for 1.0, the line's
    locked dependency tree (the one `dl serve` built) in a separate interpreter."""
    files = [str(shop_files / "data.db"), str(shop_files / "other.db")]
    if line == "0.65":

        async def plain_datasette():
            ds = Datasette(immutables=files)
            return {path: (await ds.client.get(path)) for path in COMPARED}

        return {
            p: (r.status_code, answer(r.status_code, r.headers, r.json))
            for p, r in asyncio.run(plain_datasette()).items()
        }
    from dl.build.dependencies import ensure_dependencies, find_interpreter, target_spec
    from dl.manifest.load import load_manifest

    instance = load_manifest(shop_files / "datasette-lambda.yml").instances["plain"]
    spec = target_spec(instance, "host")
    python = find_interpreter(spec.python_version)
    tree, cached = ensure_dependencies(spec, instance.plugins, python, log=lambda _: None)
    assert cached  # the tree `dl serve` runs
    done = subprocess.run(
        [str(python), "-I", "-S", "-c", PLAIN_DATASETTE, str(tree), *files],
        input=json.dumps(COMPARED),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return {p: tuple(answer) for p, answer in json.loads(done.stdout.splitlines()[-1]).items()}


def answer(status: int, headers, body):
    """A redirect's target (1.0 redirects /db.json?sql= to /db/-/query.json), else the JSON body."""
    return headers["location"] if 300 <= status < 400 else body()


def test_json_bodies_equal_plain_datasette(plain, shop_files, line):
    expected = plain_datasette_answers(line, shop_files)
    public = origin(plain)
    for path in COMPARED:
        reply = fetch(public + path)
        status, body = expected[path]
        assert reply.status == status, path
        ours = without_timings(answer(reply.status, reply.headers, reply.json))
        theirs = without_timings(body)
        theirs = json_replace(theirs, "http://localhost/", public + "/")
        assert ours == theirs, path


def json_replace(value, old: str, new: str):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: json_replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [json_replace(v, old, new) for v in value]
    return value


LIVE_MANIFEST = """\
version: 1
project: live-test
instances:
  live:
    databases: [live.db]
    timeout: 2
    config: {sql_time_limit_ms: 60000}
  live10:
    datasette: "1.0a"
    databases: [live10.db]
    timeout: 2
    config: {sql_time_limit_ms: 60000}
  measured:
    databases: [measured.db]
    metadata:
      custom_units: ["smoot = 1.7018 m"]
      databases:
        measured:
          tables:
            items: {units: {value: m}}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A second `dl serve` whose files the tests change: (process, folder)."""
    folder = tmp_path_factory.mktemp("live")
    make_shop_db(folder / "live.db", items=2)
    make_shop_db(folder / "live10.db", items=2)
    make_shop_db(folder / "measured.db", items=4)  # values 0, 1.5, 3, 4.5
    (folder / "datasette-lambda.yml").write_text(LIVE_MANIFEST)
    served = start_serve(folder / "datasette-lambda.yml")
    yield served, folder
    stop_serve(served)
    assert served.proc.returncode == 0
    assert "Stopping." in served.lines


LIVE_INSTANCES = {"live": Api("0.65"), "live10": Api("1.0a")}  # the same tests on each Datasette line


@pytest.mark.parametrize("name", LIVE_INSTANCES)
def test_reloads_when_a_database_changes(live, name):
    served, folder = live
    url, api = served.urls[name], LIVE_INSTANCES[name]
    table = api.table(f"{name}/items.json", "count")
    assert api.count(fetch(url + table).json()) == 2
    while not served._queue.empty():  # earlier reloads (a change reloads every instance) are not this one's
        served._queue.get_nowait()
    (folder / f"{name}.db").unlink()
    make_shop_db(folder / f"{name}.db", items=9)
    served.wait_for(rf"{name}: http://\S+ \(reloaded\)", timeout=120)
    assert api.count(fetch(url + table).json()) == 9


@pytest.mark.parametrize("name", LIVE_INSTANCES)
def test_a_request_over_the_function_timeout_is_a_502_and_the_next_one_works(live, name):
    served, _ = live
    url, api = served.urls[name], LIVE_INSTANCES[name]
    slow = "with+recursive+c(x)+as+(select+1+union+all+select+x%2B1+from+c)+select+count(*)+from+c"
    reply = fetch(url + api.sql(name, slow))
    assert reply.status == 502
    assert "Task timed out after 2 seconds" in reply.text
    assert fetch(url + f"{name}/items.json").status == 200  # a fresh worker, as Lambda starts a new sandbox


def test_units_metadata_renders_units_and_converts_filters(live):
    """Pint's registry is built on first use in the package (dl_runtime.units): units must still work.
    (0.65 only: Datasette 1.0 has no units support, and dl_runtime.units does nothing there.)"""
    served, _ = live
    url = served.urls["measured"]
    page = fetch(url + "measured/items?_sort=id")
    assert page.status == 200
    assert "1.5&nbsp;m" in page.text and "4.5&nbsp;m" in page.text
    rows = fetch(url + "measured/items.json?_shape=array&value__lt=300cm").json()
    assert [row["value"] for row in rows] == [0.0, 1.5]
    rows = fetch(url + "measured/items.json?_shape=array&value__gt=1smoot").json()  # custom_units
    assert [row["value"] for row in rows] == [3.0, 4.5]
