"""Which MovieLens release a local folder holds, from its files alone."""
import pytest

from schemas.movielens import AmbiguousFolder, detect_dataset


def make(folder, *names, readme=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("x\n")
    if readme:
        (folder / "README.txt").write_text(readme)
    return folder


def test_layouts_with_one_release_need_no_name(tmp_path):
    assert detect_dataset(make(tmp_path / "a", "u.data", "u.item")).name == "ml-100k"
    assert detect_dataset(make(tmp_path / "b", "ratings.dat", "movies.dat")).name == "ml-1m"


def test_csv_releases_are_told_apart_by_readme_or_folder_name(tmp_path):
    readme = "Summary\n=======\n\nThis dataset (ml-25m) describes 5-star rating and free-text tagging activity"
    assert detect_dataset(make(tmp_path / "x", "ratings.csv", "movies.csv", readme=readme)).name == "ml-25m"
    assert detect_dataset(make(tmp_path / "ml-32m", "ratings.csv", "movies.csv")).name == "ml-32m"
    with pytest.raises(AmbiguousFolder, match="ml-latest-small, ml-20m, ml-25m, ml-32m.*set RECO_DATASET"):
        detect_dataset(make(tmp_path / "export", "ratings.csv", "movies.csv"))


def test_a_configured_name_must_fit_the_files(tmp_path):
    folder = make(tmp_path / "export", "ratings.csv", "movies.csv")
    assert detect_dataset(folder, "ml-20m").name == "ml-20m"
    with pytest.raises(AmbiguousFolder, match="set to ml-1m, whose layout is ratings.dat and movies.dat"):
        detect_dataset(folder, "ml-1m")


def test_a_folder_without_a_layout_is_named_as_such(tmp_path):
    with pytest.raises(AmbiguousFolder, match="holds no MovieLens layout"):
        detect_dataset(make(tmp_path / "half", "ratings.csv"))
