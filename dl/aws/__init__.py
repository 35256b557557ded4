"""AWS: the one boto3 adapter (``client``), the state read from it (``observed``), and the CloudFormation templates as pure data.

This ``__init__`` imports nothing, so the pure modules of the folder stay importable without boto3."""
