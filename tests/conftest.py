"""Shared test settings: hypothesis profiles and the guard against an empty run."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("MICROAD_HYPOTHESIS_PROFILE", "ci"))

# A run that collects far fewer tests than the suite contains means that test
# files failed to be found; fail it rather than pass quietly.
MINIMUM_TESTS = 20


def pytest_collection_finish(session):
    selected = session.config.args == [] or session.config.args == session.config.getini("testpaths")
    if selected and not session.config.option.keyword and len(session.items) < MINIMUM_TESTS:
        raise RuntimeError(f"only {len(session.items)} tests collected, expected at least "
                           f"{MINIMUM_TESTS}; check the test paths")
