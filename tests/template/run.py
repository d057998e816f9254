"""Runs test_template.py and ends with a cargo-style summary line, which ./scripts/test counts."""
import pathlib
import sys
import unittest

here = pathlib.Path(__file__).resolve().parent
suite = unittest.defaultTestLoader.discover(str(here), pattern="test_*.py")
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
failed = len(result.failures) + len(result.errors)
passed = result.testsRun - failed - len(result.skipped)
verdict = "ok" if failed == 0 else "FAILED"
print(f"test result: {verdict}. {passed} passed; {failed} failed; {len(result.skipped)} ignored")
sys.exit(0 if failed == 0 else 1)
