"""The apply stage: the only code that writes to AWS. It executes a Plan.

executor.py runs it (apply_plan, Executor); refusals.py checks before anything is written; bootstrap.py makes
sure the bootstrap is current; stacks.py brings a stack to its template through a change set; artifacts.py
uploads and collects what the stacks use; domains.py handles certificates, domain handovers and DNS advice;
rollback.py and verify.py verify a deploy over HTTP; results.py is what an apply reports; lock.py is the
project's lock; preview.py is what makes a pull request's preview.
"""
