"""greatai.procmem: shared mappings found in /proc/self/maps and faulted in once."""
import mmap
import os
import tempfile

from greatai import procmem


def test_prefault_touches_each_shared_mapping_once():
    size = 8 << 20
    with tempfile.NamedTemporaryFile(dir="/dev/shm", prefix="greatai-procmem-") as f:
        f.truncate(size)
        m = mmap.mmap(f.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            found = [x for x in procmem.shared_mappings(f.name)]
            assert len(found) == 1 and found[0][1] - found[0][0] == size
            before = procmem.memory_mb()["shmem"]
            got = procmem.prefault_shared(f.name)
            assert got == {"mappings": 1, "mb": 8.0, "failed": 0}
            assert procmem.memory_mb()["shmem"] >= before + 7.5      # all its pages are mapped now
            assert procmem.prefault_shared(f.name)["mappings"] == 0  # not again
        finally:
            m.close()
    assert procmem.shared_mappings(f.name) == []
    assert procmem.prefault_shared(f.name) == {"mappings": 0, "mb": 0.0, "failed": 0}


def test_memory_mb_fields():
    mem = procmem.memory_mb()
    assert set(mem) == {"rss", "pss", "anon", "shmem"}
    assert mem["rss"] >= mem["anon"] > 0
    assert os.path.exists("/proc/self/smaps_rollup")
