"""A one-minute soak on loopback (tests/soak_run.py): writer threads, a scraper thread, the native
server scraped by a well-behaved client and held by a hostile one (a few hundred idle
connections), children forked nonstop and compactions of their files, all at once. It stops by
itself; then no update is lost, every histogram seen was consistent, the well-behaved client's
p99 stayed within twice its quiet value, and memory stayed flat."""
import json
import os
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).with_name('soak_run.py')
SECONDS = 60
MIB = 1 << 20


def test_soak():
    # The soak makes its own directory, after creating its in-memory metrics.
    env_free = {k: v for k, v in os.environ.items() if k.lower() != 'prometheus_multiproc_dir'}
    result = subprocess.run([sys.executable, str(SOAK), str(SECONDS)], capture_output=True,
                            text=True, timeout=SECONDS * 4, env=env_free)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.splitlines()[-1])
    context = (report, result.stderr[-2000:])

    assert report['live_threads'] == [], context
    assert report['problems'] == [], context
    # No lost update: each count is what the writers counted, in memory and in the files.
    written = report['written']
    assert report['ops'] == written and report['observations'] == written, context
    assert {k: v for k, v in report['shared'].items() if k != 'child'} == written, context
    # Every child ran to the end, and the compactions kept each child's increment.
    assert report['children_bad'] == 0 and report['children_ok'] > 0, context
    assert report['shared']['child'] == report['children_ok'], context
    assert report['compactions'] > 0, context
    # The well-behaved client is served as well under load as in the quiet part.
    assert report['quiet_scrapes'] > 10 and report['loaded_scrapes'] > 10, context
    assert report['loaded_p99'] <= 2 * report['quiet_p99'], context
    # Flat memory: the loaded part (forks, idle connections, compactions) leaks nothing.
    growth = report['rss_end'] - report['rss_start']
    assert growth < max(16 * MIB, report['rss_start'] // 4), context
