"""The manifest stage: load ``datasette-lambda.yml``, check it against schema.json and the semantic rules, normalise it (pure)."""
