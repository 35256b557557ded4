"""The apply stage: the only code that writes to AWS. It executes a Plan."""
