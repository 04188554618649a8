from jobs.lib.runtime.class_archive import jvm_options


def test_the_archive_is_named_only_when_there_is_one_and_none_is_named_yet(tmp_path):
    archive = tmp_path / "spark-classes.jsa"
    assert jvm_options("-XX:TieredStopAtLevel=1", archive) == "-XX:TieredStopAtLevel=1"
    archive.write_bytes(b"x")
    assert jvm_options("-XX:TieredStopAtLevel=1", archive) == f"-XX:TieredStopAtLevel=1 -XX:SharedArchiveFile={archive}"
    assert jvm_options("", archive) == f"-XX:SharedArchiveFile={archive}"
    assert jvm_options("-XX:SharedArchiveFile=/other.jsa", archive) == "-XX:SharedArchiveFile=/other.jsa"
