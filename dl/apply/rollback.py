"""Verified deploys in apply: check a changed instance over HTTP, and roll back a failed check when asked.

With verification on (``dl apply``'s default), each instance whose stack changed is checked at its public URL
(dl/apply/verify.py: versions, database pages, row counts) once its stack has settled. With
``--rollback-on-failure``, what was deployed before the update (:func:`previous_deployment`: its original
template and tags, read before the change set) is deployed again when the check fails, and the instance is
reported failed either way (:func:`verify_or_roll_back`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from urllib.parse import urlsplit

from dl.apply import verify
from dl.apply.stacks import DeployError, StackDeployer
from dl.aws import hosts
from dl.aws.client import Aws


def previous_deployment(aws: Aws, name: str) -> tuple[dict, dict]:
    """(template, tags) of what is deployed now, kept to re-deploy when verification fails."""
    body = aws.cfn.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
    stack = aws.stack(name)
    return (json.loads(body) if isinstance(body, str) else body), dict(stack.tags if stack else {})


def verify_or_roll_back(
    aws: Aws,
    name: str,
    spec: dict,
    previous,
    deployer: StackDeployer,
    parameters: dict,
    bucket: str,
    *,
    log: Callable[[str], None],
    external_dns: bool = False,
) -> str | None:
    """Verify the deployed instance over HTTP; on failure re-deploy `previous` when asked to. Returns the URL.

    A custom domain whose DNS is not in Route 53 (``external_dns``: the user creates its record, maybe
    only after this apply) is checked through the distribution's own ``*.cloudfront.net`` host, which
    serves the same distribution whatever the domain's DNS says."""
    stack = aws.stack(name)
    url = hosts.public_url(aws, stack, spec, bucket) if stack else None
    target = url
    if stack and url and spec.get("domain") and external_dns:
        target = hosts.distribution_url(aws, stack, spec, bucket)
        if target:
            log(
                f"{spec['instance']}: verifying through the distribution's own host {target}: "
                f"{spec['domain']} is not in Route 53, so it is not checked until its DNS record exists"
            )
    if not target:
        log(f"{spec['instance']}: not verified: AWS reports no public URL for it (an emulator?)")
        return None
    parts = urlsplit(target)
    inspections = {
        d["name"]: {"tables": {t: {"count": v.get("rows")} for t, v in d.get("tables", {}).items()}}
        for d in spec["databases"]
    }
    expectation = verify.expectation_for(
        f"{parts.scheme}://{parts.netloc}",
        spec["prefix"],
        spec["versions"].get("datasette", ""),
        inspections,
    )
    result = verify.verify_instance(expectation, timeout=float(os.environ.get("DL_VERIFY_SECONDS", "120")))
    if result.ok:
        log(f"{spec['instance']}: verified {target}")
        return url
    if previous is not None:
        log(f"{spec['instance']}: verification failed; re-deploying the previous spec")
        template, tags = previous
        declared = template.get("Parameters") or {}  # secrets may have been added or removed since
        kept = {k: v for k, v in parameters.items() if k in declared}
        deployer.deploy(name, template, tags=tags, parameters=kept)
        raise DeployError(f"{result.message()}\nrolled back to the previous deployment")
    raise DeployError(result.message())
