"""Helpers shared by the test suites (service, docker): real processes and a throwaway PostgreSQL.

* :mod:`tests.support.processes` — free loopback ports, subprocesses with their own log file,
  waiting for an HTTP URL, stopping by PID (SIGTERM, then SIGKILL).
* :mod:`tests.support.postgres` — a throwaway PostgreSQL 15 on 127.0.0.1 (skipped where not installed).
"""
