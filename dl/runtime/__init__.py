"""The code that runs inside AWS Lambda: Mangum around Datasette, serving one instance.

This package is copied into every deployment package as the top-level ``dl_runtime`` package, next to
``dl_instance/instance.json`` (the instance's description) and the inlined databases. It therefore imports
nothing from the rest of ``dl``: only the standard library, Datasette, Mangum and (lazily, because the Lambda
Python runtime provides them and local runs do not need them) boto3/botocore; and only relative imports.

Modules, in the order a request meets them:

* ``handler``  - the Lambda entry point ``dl_runtime.handler.handler(event, context)``.
* ``settings`` - the process environment (bucket, secrets, folders) read once.
* ``instance`` - ``instance.json``: the instance, its databases and their locations.
* ``fetch``    - databases kept in S3, downloaded to ``/tmp`` and verified on cold start.
* ``gateway``  - the ASGI layer between Mangum and Datasette: prefix, host, 404s, size limit, downloads, log.
* ``links``    - links Datasette builds from the request path, carrying the prefix exactly once.
* ``marshalling`` - the size of a response as the Lambda runtime posts it, and Lambda's limit.
* ``app``      - the Datasette application itself, opened immutable with the instance's configuration.
* ``units``    - pint's unit registry (Datasette's ``units`` metadata) built on first use, not at import.
* ``worker``   - the loop ``dl serve`` runs in an isolated interpreter to feed the handler real events.
"""
