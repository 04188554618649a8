"""The suite's one driver JVM (tests/conftest.py) lives for the whole run: C1 alone, with room for its code."""


def test_the_suites_driver_jvm_keeps_the_tiered_code_cache(spark):
    jvm = spark._jvm
    pools = {pool.getName(): pool for pool in jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()}
    code_cache = pools["CodeCache"]  # one unsegmented cache under C1 alone
    # 48 MB by default with C1 alone: one pipeline run on 100K ratings peaks at 47.5 MB, and a full cache fails the
    # next query ("Out of space in CodeCache for adapters").
    assert code_cache.getUsage().getMax() >= 240 * 2**20
    assert code_cache.getPeakUsage().getUsed() < code_cache.getUsage().getMax() / 2
