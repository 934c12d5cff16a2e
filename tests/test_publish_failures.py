"""A publication that fails (an error, not a kill: test_publish.py) before the new set is in place leaves
``out`` exactly as it was: the user's entries carried into the staging directory are moved back, nothing
is left beside ``out``, the error is raised. Where moving them back fails too, they are kept (never
removed), a note on the error says where, and the next run puts them back. An error after the new set is
in place says so (``published``)."""

import errno
import os
from pathlib import Path

import pytest

from sgd_dmft import cli, publish
from sgd_dmft.results import write_result_set

OLD = ("theory.nc", "simulation.nc", "figure.png", "summary.json")
NEW = ("theory.nc", "simulation.nc", "summary.json")


def _old_set(out):
    """The old set and the user's entries: a file (hard-linked when carried), directories and a symlink
    (moved when carried)."""
    out.mkdir()
    for n in OLD:
        (out / n).write_text(f"old {n}")
    (out / "my_config.toml").write_text("mine")
    (out / "cache").mkdir()
    (out / "cache" / "entry").write_text("cached")
    (out / "notes").mkdir()
    (out / "notes" / "todo.txt").write_text("todo")
    (out / "link").symlink_to("my_config.toml")


def _snap(root):
    """Every entry under ``root``: its kind, content (or link target) and inode."""
    snap = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            what = os.readlink(p) if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes()
            snap[str(p.relative_to(root))] = (what, st.st_ino)
    return snap


def _write(out, step=None):
    return write_result_set(out, {k: (lambda p: Path(p).write_text("new")) for k in NEW}, step=step)


def _fail_rename(monkeypatch, when):
    """os.rename raises EIO where ``when(src, dst)``."""
    real = os.rename

    def rename(src, dst):
        if when(Path(src), Path(dst)):
            raise OSError(errno.EIO, f"injected: cannot rename {src}")
        return real(src, dst)

    monkeypatch.setattr(os, "rename", rename)


def _busy(a, b):
    raise OSError(errno.EBUSY, "injected: exchange busy")


def _raise_at(where):
    def step(name):
        if name == where:
            raise RuntimeError(f"injected at {where}")
    return step


def _inject(case, monkeypatch, out):
    """Set up the fault ``case``; returns the step hook for write_result_set."""
    if case in ("rename aside", "rename into place", "step moved aside"):
        monkeypatch.setattr(publish, "_exchange", lambda a, b: False)  # the fallback's renames
    if case == "exchange raises":
        monkeypatch.setattr(publish, "_exchange", _busy)
    elif case == "rename aside":
        _fail_rename(monkeypatch, lambda s, d: s == out and d.name.endswith(".old"))
    elif case == "rename into place":
        _fail_rename(monkeypatch, lambda s, d: s.name.endswith(".staging") and d == out)
    elif case == "carry midway":  # cache and link are carried already, notes fails
        _fail_rename(monkeypatch, lambda s, d: s == out / "notes")
    elif case == "carried list":
        real = Path.write_text

        def write_text(self, data, *a, **k):
            if self.name.endswith(publish.CARRIED):
                real(self, data[:3], *a, **k)
                raise OSError(errno.ENOSPC, "injected: no space left")
            return real(self, data, *a, **k)

        monkeypatch.setattr(Path, "write_text", write_text)
    return _raise_at(case.removeprefix("step ")) if case.startswith("step") else None


CASES = ["exchange raises", "rename aside", "rename into place", "carry midway", "carried list", "step carried",
         "step moved aside"]


@pytest.mark.parametrize("case", CASES)
def test_failure_before_publication_leaves_out_as_it_was(tmp_path, monkeypatch, case):
    out = tmp_path / "o"
    _old_set(out)
    before = _snap(out)
    step = _inject(case, monkeypatch, out)
    with pytest.raises((OSError, RuntimeError), match="injected") as ei:
        _write(out, step)
    assert getattr(ei.value, "published", None) is None and not getattr(ei.value, "__notes__", None)
    assert _snap(out) == before
    assert sorted(os.listdir(tmp_path)) == ["o"], "nothing stale beside out"


def _next_run_puts_back(monkeypatch, out, before):
    """The leftovers of a failed put-back are restored by the next run (another process: its pid gone)."""
    monkeypatch.undo()
    monkeypatch.setattr(publish, "_pid_alive", lambda pid: False)
    publish.clean_stale(out)
    assert _snap(out) == before
    assert sorted(os.listdir(out.parent)) == ["o"]


def test_put_back_fails_after_the_exchange_failed(tmp_path, monkeypatch):
    out = tmp_path / "o"
    _old_set(out)
    before = _snap(out)
    monkeypatch.setattr(publish, "_exchange", _busy)
    _fail_rename(monkeypatch, lambda s, d: d == out / "cache")  # cache cannot go back
    with pytest.raises(OSError, match="exchange busy") as ei:
        _write(out)
    (stage,) = [p for p in tmp_path.iterdir() if p.name.endswith(".staging")]
    notes = " ".join(ei.value.__notes__)
    assert "cache" in notes and str(stage) in notes and "link" not in notes
    assert (stage / "cache" / "entry").read_text() == "cached"  # kept, not removed
    assert Path(str(stage) + publish.CARRIED).is_file()
    assert (out / "link").is_symlink() and (out / "notes" / "todo.txt").read_text() == "todo"  # these went back
    assert str(stage) in cli._one_line(ei.value)  # the CLI's one line names where the cache is
    _next_run_puts_back(monkeypatch, out, before)


def test_put_back_fails_when_out_cannot_be_renamed_back(tmp_path, monkeypatch):
    out = tmp_path / "o"
    _old_set(out)
    before = _snap(out)
    monkeypatch.setattr(publish, "_exchange", lambda a, b: False)
    _fail_rename(monkeypatch, lambda s, d: d == out)  # neither the new set nor the old one gets into place
    with pytest.raises(OSError, match="injected") as ei:
        _write(out)
    assert not out.exists()
    (old,) = [p for p in tmp_path.iterdir() if p.name.endswith(".old")]
    (stage,) = [p for p in tmp_path.iterdir() if p.name.endswith(".staging")]
    notes = " ".join(ei.value.__notes__)
    assert str(old) in notes and str(stage) in notes
    assert (old / "theory.nc").read_text() == "old theory.nc" and (stage / "cache" / "entry").read_text() == "cached"
    _next_run_puts_back(monkeypatch, out, before)


def test_old_set_not_renamed_after_publication_is_still_published(tmp_path, monkeypatch):
    out = tmp_path / "o"
    _old_set(out)
    monkeypatch.setattr(publish, "_exchange", lambda a, b: False)
    _fail_rename(monkeypatch, lambda s, d: s.name.endswith(".old") and d.name.endswith(".staging"))
    _write(out)  # the new set is in place: the old one is removed where it is
    assert {p.name: p.read_text() for p in out.iterdir() if p.name in OLD} == {n: "new" for n in NEW}
    assert (out / "cache" / "entry").read_text() == "cached" and (out / "link").is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["o"]


def test_error_after_the_exchange_says_published(tmp_path, monkeypatch):
    out = tmp_path / "o"
    _old_set(out)
    with pytest.raises(RuntimeError) as ei:
        _write(out, _raise_at("exchanged"))
    assert ei.value.published == out
    assert (out / "theory.nc").read_text() == "new" and not (out / "figure.png").exists()
    assert (out / "cache" / "entry").read_text() == "cached" and (out / "notes" / "todo.txt").read_text() == "todo"
    assert sorted(os.listdir(tmp_path)) == ["o"]


def test_clean_keeps_carried_entries_it_cannot_put_back(tmp_path, monkeypatch):
    """A killed run's staging directory holds the user's cache while out has a cache again: neither is
    removed (before: the carried one was)."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "cache").mkdir()
    stage = tmp_path / ".o.4000000.abcdefgh.staging"
    (stage / "cache").mkdir(parents=True)
    (stage / "cache" / "entry").write_text("cached")
    Path(str(stage) + publish.CARRIED).write_text('["cache"]')
    monkeypatch.setattr(publish, "_pid_alive", lambda pid: False)
    with pytest.raises(OSError, match="cache"):
        publish.clean_stale(out)
    assert (stage / "cache" / "entry").read_text() == "cached" and Path(str(stage) + publish.CARRIED).is_file()
    (out / "cache").rmdir()
    publish.clean_stale(out)
    assert (out / "cache" / "entry").read_text() == "cached" and sorted(os.listdir(tmp_path)) == ["o"]
