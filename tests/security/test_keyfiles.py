"""Secret and key files: created exclusively, readable by their owner only, refused when others may read them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from citadel.errors import ConfigurationError
from citadel.security.keyfiles import create_private, make_private_folder, read_private


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_created_file_is_readable_and_writable_by_its_owner_only(tmp_path: Path) -> None:
    assert create_private(tmp_path / "secret", "hush\n")

    assert mode(tmp_path / "secret") == 0o600
    assert read_private(tmp_path / "secret", "token secret") == "hush\n"


def test_a_created_file_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        create_private(tmp_path / "secret", "hush\n")
    finally:
        os.umask(previous)

    assert mode(tmp_path / "secret") == 0o600


def test_creating_a_file_that_exists_writes_nothing_and_says_so(tmp_path: Path) -> None:
    create_private(tmp_path / "secret", "first\n")

    assert not create_private(tmp_path / "secret", "second\n")
    assert (tmp_path / "secret").read_text() == "first\n"


def test_missing_folders_are_created_with_mode_0700(tmp_path: Path) -> None:
    create_private(tmp_path / "var" / "keys" / "secret", "hush\n")

    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "keys") == 0o700


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir(mode=0o755)
    (tmp_path / "var").chmod(0o755)

    make_private_folder(tmp_path / "var")
    create_private(tmp_path / "var" / "secret", "hush\n")

    assert mode(tmp_path / "var") == 0o755


def test_processes_creating_one_file_at_once_all_read_the_same_whole_content(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret"
    created: list[bool] = []
    read: list[str] = []
    start = threading.Barrier(8)

    def node(n: int) -> None:
        start.wait()
        created.append(create_private(path, f"secret of node {n}\n" * 1000))
        read.append(read_private(path, "token secret"))

    threads = [threading.Thread(target=node, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert created.count(True) == 1
    assert len(set(read)) == 1
    assert read[0] == path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no temporary file left behind


@pytest.mark.parametrize("others", [0o640, 0o604, 0o660, 0o620, 0o602])
def test_a_file_its_group_or_others_may_read_or_write_is_refused_naming_chmod_600(tmp_path: Path, others: int) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{}")
    path.chmod(others)

    with pytest.raises(ConfigurationError) as refused:
        read_private(path, "master key")

    assert str(refused.value) == (
        f"the master key file {path} is open to other users (mode {others:o}): run `chmod 600 {path}`"
    )


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=f"cannot read the token secret file {tmp_path / 'nope'}"):
        read_private(tmp_path / "nope", "token secret")
