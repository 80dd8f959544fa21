"""CI must not pass by skipping: a test whose system part is missing fails under CI=true."""

from __future__ import annotations

import pytest

from tests.conftest import require


def test_require_fails_under_ci_skips_elsewhere_and_passes_when_present(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="a Java runtime is missing"):
        require(False, "a Java runtime")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="a Java runtime is missing"):
        require(False, "a Java runtime")
    require(True, "a Java runtime")  # present: the test goes on
