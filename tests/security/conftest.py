"""The security suite reuses the deploy suite's fixtures (project folder, shared tool cache, moto server)."""

from tests.apply import conftest as deploy_fixtures

project = deploy_fixtures.project
