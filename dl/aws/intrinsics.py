"""CloudFormation intrinsic functions as data (``Fn::Sub``, ``Fn::Select``...), shared by the templates.

Pure: each returns the JSON a template holds; CloudFormation evaluates it when the stack is deployed.
"""

from __future__ import annotations

UNIQUE_NAME_ROOM = 55  # account-wide names: <= 64 characters including "-" and 8 hex characters


def sub(text: str) -> dict:
    return {"Fn::Sub": text}


def stack_uuid() -> dict:
    """The random UUID AWS puts in this stack's ID: unguessable, stable for the stack's life."""
    return {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}


def unique_name(stack_name: str) -> dict:
    """An account-wide unique name (CloudFront functions, policies, OACs are global): stack + 8 hex."""
    first_group = {"Fn::Select": [0, {"Fn::Split": ["-", stack_uuid()]}]}
    return {"Fn::Join": ["-", [stack_name[:UNIQUE_NAME_ROOM], first_group]]}


def host_of(url: dict) -> dict:
    """``xyz.example`` from an ``https://xyz.example/`` URL attribute."""
    return {"Fn::Select": [2, {"Fn::Split": ["/", url]}]}
