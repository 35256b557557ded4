"""The command line's edge: every click command, one module per command or family (plan, apply, destroy and
unlock, preview, bootstrap, template, package, serve, status, logs, sandbox, validate), the options they
share, the output helpers of the deploying commands, the shared pipeline, and ``datasette publish lambda``."""
