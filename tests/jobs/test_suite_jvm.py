"""The suite's one driver JVM (tests/conftest.py) lives for the whole run: C1 alone, with room for its code."""


def test_the_suites_driver_jvm_keeps_the_tiered_code_cache(spark):
    management = spark._jvm.java.lang.management.ManagementFactory
    # One "CodeCache" pool under C1 alone; "CodeHeap '...'" segments under tiered compilation.
    code_pools = [pool for pool in management.getMemoryPoolMXBeans() if pool.getName().startswith("Code")]
    reserved = sum(pool.getUsage().getMax() for pool in code_pools)
    # 48 MB by default with C1 alone: one pipeline run on 100K ratings peaks at 47.5 MB, and a full cache fails the
    # next query ("Out of space in CodeCache for adapters").
    assert reserved >= 240 * 2**20
    assert sum(pool.getPeakUsage().getUsed() for pool in code_pools) < reserved / 2
