"""The scripted upstream in a process of its own, so that the load generator's threads and the
upstream's do not share one interpreter lock: in the bench's process, each streamed answer waited
for the callers' threads, which added to every request's latency on both sides.

`python -m bench.upstream_process` prints the upstream's URL, answers until stdin closes."""

from __future__ import annotations

import subprocess
import sys

from tests.support.upstream import ScriptedUpstream


class UpstreamProcess:
    """A `ScriptedUpstream` with the mixed workload's rules, in a child process."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.upstream_process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError("the upstream process did not start")

    def stop(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def main() -> int:
    from bench.mixed_scripts import script_upstream

    upstream = ScriptedUpstream().start()
    script_upstream(upstream)
    print(upstream.url, flush=True)  # noqa: T201 - the parent reads the URL
    sys.stdin.read()  # until the parent closes it
    upstream.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
