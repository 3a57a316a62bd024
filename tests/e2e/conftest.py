import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # Fixtures read item.rep_setup / item.rep_call to tell whether the test failed
    # (and so whether to print the logs of the processes they started).
    setattr(item, f"rep_{report.when}", report)
